"""Model-guided conversion (``--model``): auto-named Keras and Flax twins filled from PyTorch checkpoints and
loaded by the frameworks' own loaders, and back into the torch twin with ``load_state_dict(strict=True)``.

The twins (``fixtures/autonamed.py``) share no name with PyTorch: ``conv2d_1``, ``Conv_0``,
``LSTMCell_3``, ``block_1/dense_9``.  Outputs must agree within fp32 5e-5; the way back is bit-exact.
"""
from __future__ import annotations

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import subprocess
import sys

import numpy as np
import pytest

from tensorferry.converters import InputError, LayoutError, convert
from tensorferry.fixtures import autonamed as twins

TOLERANCE = 5e-5


def _delta(a, b) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.abs(a - b).max())


@pytest.fixture(scope="module", params=twins.FAMILIES)
def case(request, tmp_path_factory):
    """One family: the PyTorch checkpoint (.pt, in module order), its outputs, and PT → TF + Flax with --model."""
    import torch

    family = request.param
    d = tmp_path_factory.mktemp(f"guided-{family}")
    model = getattr(twins, f"torch_{family}")()
    torch.save(model.state_dict(), d / "model.pt")
    inputs = getattr(twins, f"inputs_{family}")()
    keras_model = getattr(twins, f"keras_{family}")()
    flax_module, variables = getattr(twins, f"flax_{family}")()
    result = convert(d / "model.pt", d / "out", to=["tf", "flax"], models={"tf": keras_model, "flax": variables})
    return {"family": family, "dir": d, "torch": model, "inputs": inputs, "expected": twins.run("pt", model, inputs),
            "keras": keras_model, "flax": (flax_module, variables), "result": result}


def test_keras_twin_loads_tf_model_h5_with_its_own_loader(case):
    import h5py

    model, out = case["keras"], case["dir"] / "out" / "tf_model.h5"
    with h5py.File(out) as f:  # Keras pairs weighted groups with weighted layers by position
        names = [n.decode() for n in f.attrs["layer_names"]]
        weighted = [n for n in names if len(f[n].attrs["weight_names"])]
        assert weighted == [layer.name for layer in model.layers if layer.weights]
        for layer in model.layers:
            if layer.weights:
                listed = [n.decode() for n in f[layer.name].attrs["weight_names"]]
                assert listed == [w.name for w in layer.trainable_weights + layer.non_trainable_weights]
    model.load_weights(str(out))  # tf_keras' own positional h5 loader
    assert _delta(twins.run("tf", model, case["inputs"]), case["expected"]) <= TOLERANCE


def test_flax_twin_restores_flax_model_msgpack_with_from_bytes(case):
    import jax
    from flax import serialization

    module, variables = case["flax"]
    data = (case["dir"] / "out" / "flax_model.msgpack").read_bytes()
    shapes = lambda tree: {jax.tree_util.keystr(k): np.shape(v) for k, v in jax.tree_util.tree_flatten_with_path(tree)[0]}  # noqa: E731
    restored = serialization.from_bytes(variables, data)  # flax's own loader, into the model's variables
    assert shapes(restored) == shapes(variables)
    written = serialization.msgpack_restore(data)
    assert set(written) - {"__tensorferry__"} == set(variables)  # exactly the model's collections
    assert _delta(twins.run("flax", module, case["inputs"], restored), case["expected"]) <= TOLERANCE


@pytest.mark.parametrize("name", ["tf_model.h5", "flax_model.msgpack"])
def test_back_into_the_torch_twin_strictly_and_bit_exact(case, name, tmp_path):
    import torch
    from safetensors.torch import load_file

    fresh = getattr(twins, f"torch_{case['family']}")()
    with torch.no_grad():
        for p in fresh.parameters():
            p.zero_()
    result = convert(case["dir"] / "out" / name, tmp_path, to=["pt"], models={"pt": fresh})
    assert {r["class"] for r in result.plan.pairings["pt"]} <= {"nn.Conv2d", "nn.BatchNorm2d", "nn.Linear", "nn.LSTM", "nn.GRU",
                                                                "nn.Embedding", "nn.LayerNorm", "parameter"}
    state = load_file(str(tmp_path / "model.safetensors"))
    fresh.load_state_dict(state, strict=True)
    for key, value in case["torch"].state_dict().items():  # LSTM bias halves and BatchNorm counters included
        assert torch.equal(state[key], value), key
    assert _delta(twins.run("pt", fresh, case["inputs"]), case["expected"]) == 0.0


def test_cli_model_flag_and_explain(tmp_path, cli):
    import torch

    torch.save(twins.torch_cnn().state_dict(), tmp_path / "cnn.pt")
    spec = "tf=tensorferry.fixtures.autonamed:keras_cnn"
    code, out, err = cli("convert", tmp_path / "cnn.pt", "--to", "tf,flax", "--explain", "--model", spec,
                         "--model", "flax=tensorferry.fixtures.autonamed:flax_cnn")
    assert code == 0, err
    assert "pairings with the given model (6)" in out
    assert "features.3 → depthwise_conv2d" in out and "[DepthwiseConv2D, depthwise]: the only DepthwiseConv2D of these shapes" in out
    assert "features.0.weight" in out and "params/Conv_0/kernel" in out and "batch_stats/BatchNorm_1/var" in out
    code, out, _ = cli("convert", tmp_path / "cnn.pt", "--to", "tf", "--explain", "--json", "--model", spec)
    rows = json.loads(out)
    pairs = {p["source"]: p for p in rows["pairings"]["tf"]}
    assert pairs["features.1"]["class"] == "BatchNormalization" and pairs["features.6"]["kind"] == "conv"
    assert {r["decided_by"] for r in rows["targets"]["tf"]} == {"model"}
    code, out, err = cli("convert", tmp_path / "cnn.pt", "--to", "tf", "--out", tmp_path / "out", "--model", spec)
    assert code == 0, err
    model = twins.keras_cnn()
    model.load_weights(str(tmp_path / "out" / "tf_model.h5"))
    assert _delta(twins.run("tf", model, twins.inputs_cnn()), twins.run("pt", twins.torch_cnn(), twins.inputs_cnn())) <= TOLERANCE


def test_same_shaped_layers_need_creation_order(tmp_path):
    """safetensors sorts names: four (16, 16) projections per block cannot be told apart without the order."""
    from safetensors.torch import save_file

    model = twins.torch_block()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, tmp_path / "model.safetensors")
    module, variables = twins.flax_block()
    with pytest.raises(LayoutError) as err:
        convert(tmp_path / "model.safetensors", tmp_path / "a", to=["flax"], models={"flax": variables})
    assert "blocks.0.attn" in str(err.value) and "creation order" in str(err.value) and "--model pt" in str(err.value)
    assert "Block_0/Dense_0" in str(err.value)
    # the torch twin gives the order (and the kinds) of a PyTorch source that is not a target
    convert(tmp_path / "model.safetensors", tmp_path / "b", to=["flax"], models={"flax": variables, "pt": twins.torch_block()})
    from flax import serialization

    restored = serialization.from_bytes(variables, (tmp_path / "b" / "flax_model.msgpack").read_bytes())
    inputs = twins.inputs_block()
    assert _delta(twins.run("flax", module, inputs, restored), twins.run("pt", model, inputs)) <= TOLERANCE


def test_what_does_not_pair_is_an_error_naming_both_sides(tmp_path):
    import torch

    keras = twins.keras_cnn()
    state = twins.torch_cnn().state_dict()
    torch.save({**state, "aux.weight": torch.zeros(3, 12), "aux.bias": torch.zeros(3)}, tmp_path / "aux.pt")
    with pytest.raises(LayoutError) as err:  # a source tensor with no target: name it, point at --drop
        convert(tmp_path / "aux.pt", tmp_path / "a", to=["tf"], models={"tf": keras})
    assert str(err.value).startswith("aux:") and "--drop" in str(err.value) and "dense" in str(err.value)
    result = convert(tmp_path / "aux.pt", tmp_path / "b", to=["tf"], models={"tf": keras}, drop=[r"^aux\."])
    assert result.dropped == ["aux.weight", "aux.bias"]
    layers = twins.keras().layers
    bigger = twins.keras().Model(keras.input, layers.Dense(3, name="extra_head")(keras.output))
    torch.save(state, tmp_path / "cnn.pt")
    with pytest.raises(LayoutError) as err:  # a target variable with no source
        convert(tmp_path / "cnn.pt", tmp_path / "c", to=["tf"], models={"tf": bigger})
    assert "extra_head" in str(err.value) and "no source tensor" in str(err.value)
    assert not (tmp_path / "c").exists()
    gru = twins.keras().Sequential([twins.keras().Input((twins.T, 2 * twins.LSTM)), layers.GRU(twins.GRU, reset_after=False)])
    rnn = twins.torch_rnn()
    torch.save({k: v for k, v in rnn.state_dict().items() if k.startswith("gru.") and k.endswith("l0")}, tmp_path / "gru.pt")
    with pytest.raises(LayoutError, match="reset_after=False"):
        convert(tmp_path / "gru.pt", tmp_path / "d", to=["tf"], models={"tf": gru})
    with pytest.raises(InputError, match="not a target"):
        convert(tmp_path / "cnn.pt", tmp_path / "e", to=["tf"], models={"flax": twins.flax_cnn()})


def test_conversion_without_a_model_imports_no_framework(tmp_path):
    code = ("import sys; from tensorferry.converters import convert; "
            f"convert({str(twins.__file__)!r}.replace('autonamed.py', 'checkpoints/cnn'), {str(tmp_path)!r}, to=['tf', 'flax']); "
            "print(sorted(m for m in ('torch', 'tensorflow', 'tf_keras', 'jax', 'flax') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_factory_that_takes_the_config_gets_the_sources_config(tmp_path, monkeypatch):
    """One factory contract for convert and verify: called with config.json's dict when it takes an argument."""
    from tensorferry.converters.frameworks.keras import load_weights
    from tensorferry.fixtures import checkpoint_dir
    from tensorferry.fixtures.cnn import keras_model

    src = checkpoint_dir("cnn")
    (tmp_path / "myfactory.py").write_text(
        "from tensorferry.fixtures.cnn import keras_model\n"
        "seen = []\n"
        "def build(config):\n"
        "    seen.append(config)\n"
        "    return keras_model(config)\n")
    monkeypatch.chdir(tmp_path)  # as with python -m: the current folder is importable
    monkeypatch.syspath_prepend(str(tmp_path))
    result = convert(src, tmp_path / "out", to="tf", models={"tf": "myfactory:build"})
    import myfactory

    assert myfactory.seen == [json.loads((src / "config.json").read_text())]
    assert result.outputs["tf"].tensors > 0
    report = load_weights(keras_model(myfactory.seen[0]), str(tmp_path / "out"), strict=True)
    assert report == {"missing": [], "unexpected": []}, report
