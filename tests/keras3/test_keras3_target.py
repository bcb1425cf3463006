"""PyTorch → Keras 3 with ``--model tf=…`` (a Keras 3 model): ``model.weights.h5`` read by the model's
own ``load_weights``, outputs within fp32 5e-5, and the file laid out exactly as Keras' own
``save_weights`` lays it out (same groups, attributes, dataset paths, dtypes and bytes).

Twins (``fixtures/keras3_twins.py``) are auto-named: Functional, Sequential and subclassed.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import h5py
import numpy as np
import pytest

from tensorferry.converters import convert
from tensorferry.fixtures import autonamed as twins
from tensorferry.fixtures import keras3_twins as k3

TOLERANCE = 5e-5


def _layout(path) -> dict:
    """Every group and dataset of an h5 file: path → (attributes, shape, dtype, bytes)."""
    out = {}

    def visit(name, obj):
        attrs = {k: (v.decode() if isinstance(v, bytes) else str(v)) for k, v in obj.attrs.items()}
        if isinstance(obj, h5py.Dataset):
            out[name] = (attrs, obj.shape, obj.dtype.str, obj[...].tobytes())
        else:
            out[name] = (attrs,)

    with h5py.File(path, "r") as f:
        f.visititems(visit)
        out[""] = ({k: str(v) for k, v in f.attrs.items()},)
    return out


@pytest.fixture(scope="module", params=k3.FAMILIES)
def case(request, tmp_path_factory):
    import torch

    family = request.param
    d = tmp_path_factory.mktemp(f"k3-{family}")
    torch_family = k3.TORCH_TWIN[family]
    model = getattr(twins, f"torch_{torch_family}")()
    torch.save(model.state_dict(), d / "model.pt")
    inputs = getattr(twins, f"inputs_{torch_family}")()
    keras_model = getattr(k3, family)()
    result = convert(d / "model.pt", d / "out", to=["tf"], models={"tf": keras_model})
    return {"dir": d, "model": keras_model, "inputs": inputs, "expected": twins.run("pt", model, inputs), "result": result}


def test_keras3_model_loads_its_weights_file_and_matches_pytorch(case):
    assert case["result"].outputs["tf"].files == ["model.weights.h5"]
    model = case["model"]
    before = k3.run(model, case["inputs"])
    model.load_weights(str(case["dir"] / "out" / "model.weights.h5"))
    got = k3.run(model, case["inputs"])
    assert float(np.abs(before - case["expected"]).max()) > 1e-3  # the random init was really replaced
    assert float(np.abs(got - case["expected"]).max()) <= TOLERANCE


def test_file_is_laid_out_as_keras_saves_it(case):
    model, ours = case["model"], case["dir"] / "out" / "model.weights.h5"
    model.load_weights(str(ours))
    theirs = case["dir"] / "keras.weights.h5"
    model.save_weights(str(theirs))
    a, b = _layout(ours), _layout(theirs)
    a = {k: v for k, v in a.items() if not k.startswith("tensorferry_extras")}
    assert sorted(a) == sorted(b)
    for name in b:
        assert a[name] == b[name], name


def test_bfloat16_model_gets_bfloat16_datasets(tmp_path):
    import ml_dtypes
    import torch

    model = twins.torch_cnn().to(torch.bfloat16)
    torch.save(model.state_dict(), tmp_path / "model.pt")
    keras_model = k3.cnn("bfloat16")
    convert(tmp_path / "model.pt", tmp_path / "out", to=["tf"], models={"tf": keras_model})
    with h5py.File(tmp_path / "out" / "model.weights.h5") as f:
        ds = f["layers/conv2d/vars/0"]
        assert ds.attrs["dtype"] == "bfloat16" and ds.dtype.itemsize == 2
    keras_model.load_weights(str(tmp_path / "out" / "model.weights.h5"))
    kernel = keras_model.get_layer(index=1).kernel
    want = model.features[0].weight.detach().permute(2, 3, 1, 0).float().numpy().astype(ml_dtypes.bfloat16)
    got = np.asarray(kernel.numpy()).astype(ml_dtypes.bfloat16)
    assert got.dtype == ml_dtypes.bfloat16 and got.tobytes() == want.tobytes()  # bf16 kept bit for bit


def test_cli_model_flag_writes_keras3_weights(tmp_path, cli):
    import torch

    torch.save(twins.torch_rnn().state_dict(), tmp_path / "model.pt")
    code, out, err = cli("convert", tmp_path / "model.pt", "--out", tmp_path / "out", "--to", "tf",
                         "--model", "tf=tensorferry.fixtures.keras3_twins:rnn")
    assert code == 0, err
    assert (tmp_path / "out" / "model.weights.h5").is_file() and not (tmp_path / "out" / "tf_model.h5").exists()


def test_sharded_weights_match_keras_and_read_back(tmp_path):
    """Past --max-shard-size: model.weights.json + model_0000N.weights.h5 as Keras' ShardedH5IOStore writes them."""
    import json

    import torch
    from safetensors.torch import load_file

    from tensorferry.converters import InputError
    from tensorferry.converters.checkpoint import open_source

    model = twins.torch_block()
    torch.save(model.state_dict(), tmp_path / "model.pt")
    keras_model = k3.block()
    result = convert(tmp_path / "model.pt", tmp_path / "out", to=["tf"], models={"tf": keras_model}, max_shard_size=8192)
    assert result.outputs["tf"].files[-1] == "model.weights.json" and len(result.outputs["tf"].files) == 5
    keras_model.load_weights(str(tmp_path / "out" / "model.weights.json"))
    inputs = twins.inputs_block()
    assert float(np.abs(k3.run(keras_model, inputs) - twins.run("pt", model, inputs)).max()) <= TOLERANCE
    (tmp_path / "keras").mkdir()
    keras_model.save_weights(str(tmp_path / "keras" / "model.weights.json"), max_shard_size=2**-17)  # 8192 bytes
    ours, theirs = (json.loads((tmp_path / d / "model.weights.json").read_text()) for d in ("out", "keras"))
    assert ours == theirs
    for name in ours["weight_map"].values():
        for shard in name if isinstance(name, list) else [name]:
            a = {k: v for k, v in _layout(tmp_path / "out" / shard).items() if not k.startswith("tensorferry_extras")}
            assert a == _layout(tmp_path / "keras" / shard), shard
    back = twins.torch_block()  # and back, with the Keras model as structure
    convert(tmp_path / "out" / "model.weights.json", tmp_path / "back", to=["pt"], models={"pt": back, "tf": k3.block()})
    state = load_file(tmp_path / "back" / "model.safetensors")
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    index = json.loads((tmp_path / "out" / "model.weights.json").read_text())
    index["weight_map"]["/vars"] = "../model_00000.weights.h5"
    (tmp_path / "out" / "evil.weights.json").write_text(json.dumps(index))
    with pytest.raises(InputError, match="not a .weights.h5 file in the index's folder"):
        open_source(tmp_path / "out" / "evil.weights.json")
