"""Keras 3 weights as a source: ``model.weights.h5`` saved by Keras itself (alone, or with the Keras 3
model as structure) and ``.keras`` archives → PyTorch twins loading with ``strict=True`` and
computing the Keras outputs within fp32 5e-5; bad archives refused with a typed error."""
from __future__ import annotations

import json
import os
import zipfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
from safetensors.numpy import load_file

from tensorferry.converters import InputError, LayoutError, convert
from tensorferry.converters.checkpoint import open_source
from tensorferry.fixtures import autonamed as twins
from tensorferry.fixtures import keras3_twins as k3

TOLERANCE = 5e-5


def _randomise(model) -> None:
    """Values no initialiser gives (unit variances stay positive), so a mix-up shows."""
    for i, v in enumerate(model.weights):
        x = np.random.default_rng(i).standard_normal(tuple(v.shape)).astype("float32") * 0.3
        v.assign(np.abs(x) + 0.5 if "variance" in v.path else x)


@pytest.fixture(scope="module", params=k3.FAMILIES)
def saved(request, tmp_path_factory):
    family = request.param
    d = tmp_path_factory.mktemp(f"k3src-{family}")
    model = getattr(k3, family)()
    _randomise(model)
    torch_family = k3.TORCH_TWIN[family]
    inputs = getattr(twins, f"inputs_{torch_family}")()
    model.save_weights(str(d / "model.weights.h5"))  # Keras' own writer
    return {"family": family, "dir": d, "model": model, "inputs": inputs, "expected": k3.run(model, inputs),
            "torch": getattr(twins, f"torch_{torch_family}")()}


def _to_torch(saved, src, models) -> float:
    import torch

    out = saved["dir"] / f"out-{len(models)}"
    convert(src, out, to=["pt"], models=models)
    state = {k: torch.from_numpy(v) for k, v in load_file(out / "model.safetensors").items()}
    saved["torch"].load_state_dict(state, strict=True)
    return float(np.abs(twins.run("pt", saved["torch"], saved["inputs"]) - saved["expected"]).max())


def test_keras_weights_with_keras_model_as_structure_load_strictly_into_pytorch(saved):
    delta = _to_torch(saved, saved["dir"] / "model.weights.h5", {"pt": saved["torch"], "tf": saved["model"]})
    assert delta <= TOLERANCE


def test_keras_weights_alone(saved):
    src = saved["dir"] / "model.weights.h5"
    if saved["family"] == "block":  # five LayerNorms alike; attribute names (ln1, norm) say nothing of creation order
        with pytest.raises(LayoutError, match="creation order") as err:
            _to_torch(saved, src, {"pt": saved["torch"]})
        assert "--model tf=" in str(err.value)  # the remedy: the Keras 3 model as structure (the test above)
        return
    assert _to_torch(saved, src, {"pt": saved["torch"]}) <= TOLERANCE


def test_canonical_names_come_from_layer_paths(tmp_path):
    model = k3.cnn()
    model.save_weights(str(tmp_path / "model.weights.h5"))
    source = open_source(tmp_path)  # a folder with model.weights.h5
    assert source.framework == "tf"
    convert(source, tmp_path / "out", to=["pt"])
    names = set(load_file(tmp_path / "out" / "model.safetensors"))
    assert {"conv2d.weight", "conv2d_1.bias", "depthwise_conv2d.weight", "batch_normalization_1.running_var",
            "batch_normalization.num_batches_tracked", "dense.weight"} <= names


def test_keras_archive_is_read_in_place_and_its_config_reported(tmp_path, cli):
    model = k3.rnn()
    _randomise(model)
    model.save(str(tmp_path / "encoder.keras"))
    inputs = twins.inputs_rnn()
    torch_model = twins.torch_rnn()
    result = convert(tmp_path / "encoder.keras", tmp_path / "out", to=["pt"], models={"pt": torch_model})
    assert result.keras["class_name"] == "Sequential" and result.keras["keras_version"].startswith("3.")
    assert result.to_json()["keras"]["config"]["name"] == model.name
    import torch

    state = {k: torch.from_numpy(v) for k, v in load_file(tmp_path / "out" / "model.safetensors").items()}
    torch_model.load_state_dict(state, strict=True)
    assert float(np.abs(twins.run("pt", torch_model, inputs) - k3.run(model, inputs)).max()) <= TOLERANCE
    code, _, err = cli("convert", tmp_path / "encoder.keras", "--out", tmp_path / "cli", "--to", "pt",
                       "--model", "pt=tensorferry.fixtures.autonamed:torch_rnn")
    assert code == 0 and "keras archive: Sequential" in err


def test_round_trip_through_keras3_is_bit_exact(tmp_path):
    import torch

    model = twins.torch_cnn()
    torch.save(model.state_dict(), tmp_path / "model.pt")
    convert(tmp_path / "model.pt", tmp_path / "k3", to=["tf"], models={"tf": k3.cnn()})
    back = tmp_path / "back"
    convert(tmp_path / "k3" / "model.weights.h5", back, to=["pt"], models={"pt": twins.torch_cnn()})
    got = load_file(back / "model.safetensors")
    for name, value in model.state_dict().items():
        assert got[name].tobytes() == value.numpy().tobytes(), name  # num_batches_tracked rides as side data


def _zip(path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)


def test_hostile_archives_are_refused_without_extracting(tmp_path):
    model = k3.cnn()
    model.save_weights(str(tmp_path / "w.weights.h5"))
    weights = (tmp_path / "w.weights.h5").read_bytes()
    config = json.dumps({"class_name": "Functional", "config": {}}).encode()
    # members with traversal names are never used as paths: only the three exact names are opened
    _zip(tmp_path / "slip.keras", {"config.json": config, "model.weights.h5": weights, "../../evil.txt": b"x", "/abs.txt": b"x"})
    source = open_source(tmp_path / "slip.keras")
    assert source.framework == "tf" and not (tmp_path.parent / "evil.txt").exists()
    _zip(tmp_path / "bad.keras", {"config.json": b"[1, 2", "model.weights.h5": weights})
    with pytest.raises(InputError, match="config.json in the archive is not JSON"):
        open_source(tmp_path / "bad.keras")
    _zip(tmp_path / "junk.keras", {"config.json": config, "model.weights.h5": b"not hdf5 at all"})
    with pytest.raises(InputError, match="junk.keras"):
        open_source(tmp_path / "junk.keras")


def test_hostile_keras3_weights_files_are_refused(tmp_path):
    import h5py

    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.create_dataset("secret", data=np.zeros(3, "float32"))
    with h5py.File(tmp_path / "link.weights.h5", "w") as f:
        f.create_group("layers/dense/vars").attrs["name"] = "dense"
        f["layers/dense/vars/0"] = h5py.ExternalLink(str(tmp_path / "other.h5"), "secret")
    with pytest.raises(InputError, match="external link"):
        open_source(tmp_path / "link.weights.h5")
    with h5py.File(tmp_path / "bf16.weights.h5", "w") as f:
        f.create_group("layers/dense/vars").attrs["name"] = "dense"
        f["layers/dense/vars/0"] = np.zeros(3, "float32")
        f["layers/dense/vars/0"].attrs["dtype"] = "bfloat16"  # marked bfloat16, stores 4-byte floats
    with pytest.raises(InputError, match="marked bfloat16"):
        open_source(tmp_path / "bf16.weights.h5")
    with h5py.File(tmp_path / "stray.weights.h5", "w") as f:
        f.create_group("layers/dense/vars").attrs["name"] = "dense"
        f["layers/dense/extra"] = np.zeros(3, "float32")
    with pytest.raises(InputError, match="not a Keras variable"):
        open_source(tmp_path / "stray.weights.h5")
