"""`tensorferry verify`: both levels on the fixture twins, the user's classes, broken variants and a Hub repo id.

Worker start-up (torch, TensorFlow, JAX each in its own process) dominates the run time, so
conversions are module-scoped and each functional run checks as much as it can at once.
"""
from __future__ import annotations

import json
import os
import shutil
import textwrap
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import h5py
import numpy as np
import pytest

from tensorferry.converters import convert
from tensorferry.converters.verify import choose_models, compare_outputs, verify_dir
from tensorferry.fixtures import FAMILIES, checkpoint_dir
from tensorferry.publish.cli import main

MODEL = "tf_tiny_transformer"


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> dict[str, Path]:
    """Every fixture family converted to all three frameworks (no verification)."""
    out = {}
    for family in FAMILIES:
        out[family] = tmp_path_factory.mktemp(f"conv-{family}")
        convert(checkpoint_dir(family), out[family], to=["pt", "tf", "flax"])
    return out


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("verification.*"))
    return dst


# breaking a variant, one format at a time ---------------------------------------------------
def _h5(path: Path, fn) -> None:
    with h5py.File(path / "tf_model.h5", "r+") as f:
        fn(f)


def perturb_pt(path: Path, name: str, by: float = 1e-3) -> None:
    from safetensors.numpy import load_file, save_file

    tensors = load_file(path / "model.safetensors")
    tensors[name] = tensors[name] + np.asarray(by, tensors[name].dtype)
    save_file(tensors, path / "model.safetensors", metadata={"format": "pt"})


def perturb_tf(path: Path, weight: str, by: float = 1e-3) -> None:
    def fn(f):
        ds = f[f"{weight.split('/')[0]}/{MODEL}/{weight}:0"]
        ds[...] = ds[...] + by
    _h5(path, fn)


def swap_gamma_beta_tf(path: Path, norm: str) -> None:
    def fn(f):
        g, b = f[f"encoder/{MODEL}/{norm}/gamma:0"], f[f"encoder/{MODEL}/{norm}/beta:0"]
        gv, bv = g[...], b[...]
        g[...], b[...] = bv, gv
    _h5(path, fn)


def untranspose_tf(path: Path, kernel: str) -> None:
    def fn(f):
        ds = f[f"encoder/{MODEL}/{kernel}:0"]
        ds[...] = ds[...].T  # square (32, 32): the shape cannot give it away
    _h5(path, fn)


def drop_tf(path: Path, weight: str) -> None:
    def fn(f):
        group = f["encoder"]
        del group[f"{MODEL}/{weight}:0"]
        names = [n for n in group.attrs["weight_names"] if n.decode() != f"{MODEL}/{weight}:0"]
        group.attrs["weight_names"] = np.array(names)
    _h5(path, fn)


def drop_flax(path: Path, keys: tuple[str, ...]) -> None:
    from flax.serialization import msgpack_restore, msgpack_serialize

    file = path / "flax_model.msgpack"
    tree = msgpack_restore(file.read_bytes())
    node = tree
    for k in keys[:-1]:
        node = node[k]
    del node[keys[-1]]
    file.write_bytes(msgpack_serialize(tree))


# weights level ---------------------------------------------------------------------------------
BREAKS = {
    # id: (how to break the transformer twin's variants, framework, canonical culprit, status, native name part)
    "pt-perturbed": (lambda p: perturb_pt(p, "encoder.layer.0.mlp.fc_in.bias"), "pt",
                     "encoder.layer.0.mlp.fc_in.bias", "mismatch", "encoder.layer.0.mlp.fc_in.bias"),
    "tf-perturbed": (lambda p: perturb_tf(p, "encoder/layer_._1/mlp/fc_out/kernel"), "tf",
                     "encoder.layer.1.mlp.fc_out.weight", "mismatch", "layer_._1/mlp/fc_out/kernel"),
    "tf-gamma-beta-swapped": (lambda p: swap_gamma_beta_tf(p, "encoder/layer_._0/attention_norm"), "tf",
                              "encoder.layer.0.attention_norm.weight", "mismatch", "attention_norm/gamma"),
    "tf-kernel-untransposed": (lambda p: untranspose_tf(p, "encoder/layer_._0/attention/query/kernel"), "tf",
                               "encoder.layer.0.attention.query.weight", "mismatch", "attention/query/kernel"),
    "tf-tensor-missing": (lambda p: drop_tf(p, "encoder/layer_._1/attention/value/bias"), "tf",
                          "encoder.layer.1.attention.value.bias", "missing", "layer_._1/attention/value/bias"),
    "flax-tensor-missing": (lambda p: drop_flax(p, ("params", "encoder", "layer", "0", "mlp", "fc_out", "bias")), "flax",
                            "encoder.layer.0.mlp.fc_out.bias", "missing", "layer/0/mlp/fc_out/bias"),
}


@pytest.mark.parametrize("case", sorted(BREAKS))
def test_broken_variant_fails_at_weights_level_naming_the_culprit(case, converted, tmp_path) -> None:
    breaker, fw, culprit, status, native = BREAKS[case]
    broken = _copy(converted["transformer"], tmp_path / "broken")
    breaker(broken)
    v = verify_dir(broken, reference=checkpoint_dir("transformer"), functional=False, report_dir=False)
    assert not v.passed
    failures = v.weights[fw].failures
    assert culprit in [t.name for t in failures], v.summary()
    hit = next(t for t in failures if t.name == culprit)
    assert hit.status == status and native in hit.native, hit
    if status == "mismatch" and case.endswith("perturbed"):
        assert hit.max_abs == pytest.approx(1e-3, rel=1e-2) and len(failures) == 1
    if case == "tf-gamma-beta-swapped":
        assert {t.name for t in failures} == {culprit, "encoder.layer.0.attention_norm.bias"}
    if case == "tf-kernel-untransposed":
        assert len(failures) == 1
    assert all(w.passed for f, w in v.weights.items() if f != fw), "only the broken variant fails"
    assert any(culprit in line for line in v.culprits())


def test_weights_level_accepts_the_documented_cast(tmp_path) -> None:
    out = tmp_path / "fp16"
    convert(checkpoint_dir("cnn"), out, to=["pt", "flax"], dtype="float16")
    v = verify_dir(out, reference=checkpoint_dir("cnn"), functional=False, report_dir=False)
    assert v.passed, v.summary()
    assert v.weights["flax"].cast == "float32 → float16"
    assert {t.status for t in v.weights["pt"].tensors} == {"cast", "exact"}  # counters (int64) stay exact
    assert v.tolerances["flax"]["dtype"] == "float16" and v.tolerances["flax"]["rtol"] > 0
    wrong = verify_dir(out, reference=checkpoint_dir("cnn"), functional=False, report_dir=False, dtype="bfloat16")
    assert not wrong.passed and {t.status for t in wrong.weights["pt"].failures} == {"dtype"}


# functional level ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def verified(converted) -> dict:
    """The twins of every family verified in all three frameworks (cnn through `convert --verify`)."""
    return {family: verify_dir(path, reference=checkpoint_dir(family)) for family, path in converted.items() if family != "cnn"}


@pytest.mark.parametrize("family", ["transformer", "recurrent"])
def test_fixture_twins_pass_in_all_three_frameworks(family, verified, converted) -> None:
    v = verified[family]
    assert v.passed, v.summary()
    for fw in ("pt", "tf", "flax"):
        f = v.functional[fw]
        assert f.status == "pass" and f.model.startswith(f"tensorferry.fixtures.{family}:"), f
        assert all(0 <= o.max_abs <= 5e-5 and o.tolerance == 5e-5 for o in f.outputs) and f.outputs
        assert v.weights[fw].passed and v.weights[fw].tensors
    assert v.functional["pt"].outputs[0].max_abs == 0.0  # same weights, same framework: identical
    doc = json.loads((converted[family] / "verification.json").read_text())
    assert doc["schema"] == "tensorferry.verification/2" and doc["passed"] is True and doc["complete"] is True
    assert {"torch", "tensorflow", "tf-keras", "jax", "flax"} <= {k for fw in ("pt", "tf", "flax") for k in doc["versions"][fw]}
    assert doc["functional"]["tf"]["outputs"][0]["max_abs"] <= 5e-5
    table = (converted[family] / "verification.md").read_text()
    assert table.startswith("| Framework |") and table.count("✅ pass") == 3
    png = (converted[family] / "verification.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


def test_convert_verify_runs_after_converting(tmp_path, capsys) -> None:
    out = tmp_path / "cnn"
    code = main(["convert", str(checkpoint_dir("cnn")), "--to", "pt,tf,flax", "--out", str(out), "--verify", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0, report["verification"]["culprits"]
    ver = report["verification"]
    assert ver["passed"] and set(ver["functional"]) == {"pt", "tf", "flax"}
    assert all(f["status"] == "pass" for f in ver["functional"].values())
    assert (out / "verification.png").exists()


def test_broken_variants_fail_functionally_with_the_culprit(converted, tmp_path) -> None:
    """pt: lm_head.bias + 1e-3 (outputs move by exactly that); tf: gamma/beta swapped; flax: a tensor missing."""
    broken = _copy(converted["transformer"], tmp_path / "broken")
    perturb_pt(broken, "lm_head.bias")
    swap_gamma_beta_tf(broken, "encoder/layer_._0/attention_norm")
    drop_flax(broken, ("params", "encoder", "layer", "1", "attention", "key", "kernel"))
    v = verify_dir(broken, reference=checkpoint_dir("transformer"))
    assert not v.passed
    pt, tf, fx = v.functional["pt"], v.functional["tf"], v.functional["flax"]
    assert pt.status == "fail" and pt.outputs[0].max_abs == pytest.approx(1e-3, rel=1e-3)
    assert tf.status == "fail" and tf.outputs[0].max_abs > 1e-2
    assert fx.status == "error" and "params/encoder/layer/1/attention/key/kernel" in fx.error
    lines = "\n".join(v.culprits())
    assert "lm_head.bias" in lines and "encoder.layer.0.attention_norm.weight" in lines
    assert "encoder.layer.1.attention.key.weight" in lines
    assert json.loads((broken / "verification.json").read_text())["passed"] is False


def test_untransposed_kernel_fails_functionally(converted, tmp_path) -> None:
    broken = _copy(converted["transformer"], tmp_path / "broken")
    untranspose_tf(broken, "encoder/layer_._0/attention/query/kernel")
    v = verify_dir(broken, reference=checkpoint_dir("transformer"), frameworks=["tf"], report_dir=False)
    assert v.functional["tf"].status == "fail" and set(v.functional) == {"tf"}
    assert [t.name for t in v.weights["tf"].failures] == ["encoder.layer.0.attention.query.weight"]


USER_MODULE = '''
"""A user's own model, written three times, with no run_* helpers: verify's generic runners call it."""
def torch_model(config):
    import torch

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(config["in_features"], config["out_features"])
        def forward(self, x):
            return {"y": torch.tanh(self.fc(x))}
    return Tiny().eval()

def keras_model(config):
    import tf_keras as keras, tensorflow as tf

    class TFTiny(keras.Model):
        def __init__(self):
            super().__init__(name="tf_tiny")
            self.fc = keras.layers.Dense(config["out_features"], name="fc")
        def call(self, x):
            return {"y": tf.tanh(self.fc(x))}
    m = TFTiny()
    m(tf.zeros((1, config["in_features"])))
    return m

def flax_model(config):
    import jax, jax.numpy as jnp, flax.linen as nn

    class Tiny(nn.Module):
        @nn.compact
        def __call__(self, x):
            return {"y": jnp.tanh(nn.Dense(config["out_features"], name="fc")(x))}
    m = Tiny()
    return m, m.init(jax.random.PRNGKey(0), jnp.zeros((1, config["in_features"])))
'''


def test_user_classes_with_their_own_inputs(tmp_path, monkeypatch, capsys) -> None:
    from safetensors.numpy import save_file

    pkg = tmp_path / "userpkg"
    pkg.mkdir()
    (pkg / "my_models.py").write_text(textwrap.dedent(USER_MODULE))
    monkeypatch.setenv("PYTHONPATH", str(pkg))  # the workers import the user's module
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(1)
    save_file({"fc.weight": rng.standard_normal((3, 4)).astype(np.float32), "fc.bias": rng.standard_normal(3).astype(np.float32)},
              src / "model.safetensors", metadata={"format": "pt"})
    (src / "config.json").write_text(json.dumps({"architectures": ["Tiny"], "model_type": "my-tiny", "in_features": 4, "out_features": 3}))
    out = tmp_path / "out"
    convert(src, out, to=["pt", "tf", "flax"])
    np.savez(tmp_path / "inputs.npz", x=rng.standard_normal((5, 4)).astype(np.float32))

    assert choose_models({"model_type": "my-tiny"}, ["tf"])[0] is None  # unknown model, no transformers class: no source
    args = ["verify", str(out), "--json", "--inputs", str(tmp_path / "inputs.npz")]
    models = [f"--model={fw}=my_models:{fn}" for fw, fn in (("pt", "torch_model"), ("tf", "keras_model"), ("flax", "flax_model"))]
    assert main(args + models) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["inputs"]["tensors"] == {"x": {"shape": [5, 4], "dtype": "float32"}}
    for fw in ("pt", "tf", "flax"):
        f = doc["functional"][fw]
        assert f["status"] == "pass" and f["model"].startswith("my_models:") and f["outputs"][0]["name"] == "y", f
    assert doc["weights"]["pt"]["reference"] is True  # no --reference: DIR's own PyTorch weights are the reference


def test_bad_input_and_mismatch_exit_codes(converted, tmp_path, capsys) -> None:
    assert main(["verify", str(tmp_path / "missing" / "x" / "y")]) == 2
    assert main(["verify", str(converted["cnn"]), "--model", "tf:nofactory"]) == 2
    assert main(["verify", str(converted["cnn"]), "--frameworks", "tf,mxnet"]) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["verify", str(empty)]) == 2
    only_tf = tmp_path / "only-tf"
    only_tf.mkdir()
    shutil.copy(converted["cnn"] / "tf_model.h5", only_tf)
    assert main(["verify", str(only_tf), "--weights-only"]) == 2  # nothing to compare with: --reference needed
    assert "pass --reference" in capsys.readouterr().err
    broken = _copy(converted["transformer"], tmp_path / "broken")
    drop_tf(broken, "encoder/layer_._1/attention/value/bias")
    assert main(["verify", str(broken), "--weights-only", "--json", "--report-dir", str(tmp_path / "rep")]) == 3
    doc = json.loads(capsys.readouterr().out)
    assert doc["weights"]["tf"]["failures"][0]["name"] == "encoder.layer.1.attention.value.bias"
    assert (tmp_path / "rep" / "verification.md").exists() and not (tmp_path / "rep" / "verification.png").exists()


def test_worker_crash_is_reported_not_raised(converted, tmp_path, monkeypatch) -> None:
    import tensorferry.converters.verify.models as vm

    monkeypatch.setattr(vm.FactorySource, "python", lambda self, fw, options: str(tmp_path / "no-such-python"))
    v = verify_dir(converted["cnn"], frameworks=["tf"], report_dir=tmp_path / "rep")
    assert not v.passed and v.functional["tf"].status == "error"
    assert "reference outputs unavailable" in v.functional["tf"].error or "cannot start" in v.functional["tf"].error
    assert (tmp_path / "rep" / "verification.png").exists()  # the plot still says what happened


def test_compare_outputs_tolerance_rules() -> None:
    ref = {"y": np.array([0.0, 10.0], np.float32)}
    assert compare_outputs(ref, {"y": ref["y"] + 1e-4}, (5e-5, 0.0, "float32"))[0].passed is False
    assert compare_outputs(ref, {"y": ref["y"] + 1e-2}, (1e-3, 1e-2, "float16"))[0].passed is True  # 1e-3 + 1e-2·10
    assert compare_outputs(ref, {"y": np.array([np.nan, 10.0])}, (5e-5, 0.0, "float32"))[0].passed is False
    assert compare_outputs(ref, {}, (5e-5, 0.0, "float32"))[0].detail == "output missing"


# Hub repo id ----------------------------------------------------------------------------------
def test_verify_a_repo_on_the_local_hub_by_id(converted, tmp_path, monkeypatch, capsys) -> None:
    from tensorferry.publish.hub import LocalHub, create_token
    from tensorferry.publish.hub_io import hub_api

    with LocalHub(tmp_path / "hub-data") as hub:
        token = create_token(hub.data_dir, "alice")
        api = hub_api(hub.url, token)
        api.create_repo("alice/tiny-cnn")
        for name in ("config.json", "model.safetensors", "flax_model.msgpack", "tf_model.h5"):
            api.upload_file(path_or_fileobj=str(converted["cnn"] / name), path_in_repo=name, repo_id="alice/tiny-cnn")
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.chdir(tmp_path)
        cache = tmp_path / "cache"
        code = main(["verify", "alice/tiny-cnn", "--frameworks", "pt,flax", "--token", token, "--cache-dir", str(cache), "--json"])
        captured = capsys.readouterr()
        assert code == 0, captured.out[-3000:] + captured.err[-2000:]
        assert token not in captured.out and token not in captured.err
        doc = json.loads(captured.out)
        assert doc["repo"]["id"] == "alice/tiny-cnn" and doc["passed"]
        assert doc["functional"]["flax"]["status"] == "pass"
        downloaded = {p.name for p in cache.rglob("*") if p.is_file() and "snapshots" in p.parts}
        assert downloaded == {"config.json", "model.safetensors", "flax_model.msgpack"}  # not tf_model.h5
        assert (tmp_path / "verification-alice--tiny-cnn" / "verification.json").exists()
    assert main(["verify", "alice/nothing-here", "--local-files-only", "--cache-dir", str(cache), "--weights-only"]) == 2


def test_ties_must_survive(tmp_path) -> None:
    import torch
    from safetensors.numpy import load_file, save_file

    src = tmp_path / "tied"
    src.mkdir()
    model = torch.nn.ModuleDict({"emb": torch.nn.Embedding(10, 4), "head": torch.nn.Linear(4, 10, bias=False)})
    model["head"].weight = model["emb"].weight
    torch.save(model.state_dict(), src / "pytorch_model.bin")  # shared storage: a tie
    out = tmp_path / "out"
    convert(src, out, to=["pt", "tf", "flax"])
    v = verify_dir(out, reference=src, functional=False, report_dir=False)
    assert v.passed, v.summary()
    save_file(load_file(out / "model.safetensors"), out / "model.safetensors", metadata={"format": "pt"})  # tie dropped
    v = verify_dir(out, reference=src, frameworks=["pt"], functional=False, report_dir=False)
    assert [(t.name, t.status) for t in v.weights["pt"].failures] == [("head.weight", "tie")]


# honest status ----------------------------------------------------------------------------------
def _tiny_linear(root: Path, model_type: str = "my-tiny") -> Path:
    from safetensors.numpy import save_file

    src = root / "src"
    src.mkdir()
    rng = np.random.default_rng(2)
    save_file({"fc.weight": rng.standard_normal((3, 4)).astype(np.float32), "fc.bias": rng.standard_normal(3).astype(np.float32)},
              src / "model.safetensors", metadata={"format": "pt"})
    (src / "config.json").write_text(json.dumps({"architectures": ["Tiny"], "model_type": model_type}))
    return src


def test_a_run_that_compared_no_outputs_is_weights_only_never_passed(converted, tmp_path, capsys) -> None:
    v = verify_dir(converted["cnn"], reference=checkpoint_dir("cnn"), functional=False, report_dir=tmp_path / "rep")
    assert v.passed and not v.complete and v.weights_only() == ["pt", "tf", "flax"]
    text = v.summary()
    assert "PASSED" not in text and "outputs NOT compared" in text and text.count("not compared (weights only)") == 3
    table = (tmp_path / "rep" / "verification.md").read_text()
    assert table.count("weights only: outputs not compared") == 3 and "pass |" not in table
    doc = json.loads((tmp_path / "rep" / "verification.json").read_text())
    assert doc["passed"] is True and doc["complete"] is False and doc["weights_only"] == ["pt", "tf", "flax"]
    assert all(f["status"] == "not_run" and f["ran"] is False and f["passed"] is None for f in doc["functional"].values())
    args = ["verify", str(converted["cnn"]), "--reference", str(checkpoint_dir("cnn")), "--weights-only", "--no-report"]
    assert main(args) == 0
    assert main(args + ["--require-outputs"]) == 3
    assert "outputs not compared for pt, tf, flax" in capsys.readouterr().err


def test_no_model_source_is_reported_as_not_run_with_the_reason(tmp_path) -> None:
    src = _tiny_linear(tmp_path)
    out = tmp_path / "out"
    convert(src, out, to=["pt", "tf"])
    v = verify_dir(out, report_dir=False)
    assert v.passed and not v.complete
    assert all(f.status == "not_run" and "no model source" in f.error for f in v.functional.values())
    assert "no model source" in v.summary()


def test_a_worker_python_without_its_libraries_says_what_is_missing(converted, tmp_path, capsys) -> None:
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'Traceback (most recent call last):' >&2\n"
                    "echo \"ModuleNotFoundError: No module named 'transformers'\" >&2\nexit 1\n")
    fake.chmod(0o755)
    code = main(["verify", str(converted["cnn"]), "--reference", str(checkpoint_dir("cnn")), "--frameworks", "tf",
                 "--model", "transformers", "--transformers-python", str(fake), "--no-report"])
    out = capsys.readouterr().out
    assert code == 3
    assert f"{fake} cannot import transformers: install it there" in out
    assert "| ModuleNotFoundError: No module named 'transformers'" in out  # the worker's own last lines


def test_convert_verify_checks_against_the_source_as_the_conversion_read_it(tmp_path, capsys) -> None:
    """--drop (and --key, --kind, --layout-map) shape the output: --verify must compare with that, not the raw file."""
    from safetensors.numpy import load_file, save_file

    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(checkpoint_dir("cnn") / "config.json", src)
    tensors = load_file(checkpoint_dir("cnn") / "model.safetensors")
    tensors["aux_head.weight"] = np.ones((3, 8), np.float32)  # a training-only head, left out on purpose
    save_file(tensors, src / "model.safetensors", metadata={"format": "pt"})
    code = main(["convert", str(src), "--to", "pt,tf,flax", "--out", str(tmp_path / "out"), "--drop", "^aux_head",
                 "--verify", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0, report["verification"]["culprits"]
    assert report["dropped"] == ["aux_head.weight"] and report["verification"]["complete"]
    assert all(f["status"] == "pass" for f in report["verification"]["functional"].values())
