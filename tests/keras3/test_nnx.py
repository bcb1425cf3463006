"""Flax NNX and Orbax: PyTorch → an Orbax checkpoint that ``StandardCheckpointer().restore(path,
nnx.state(model))`` restores (RNG state from the template), outputs within fp32 5e-5; Orbax → PyTorch
strictly; Keras 3 ↔ NNX; linen ``flax_model.msgpack`` → NNX.  Twins: ``fixtures/nnx_twins.py``."""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
from safetensors.numpy import load_file

from tensorferry.converters import LayoutError, convert
from tensorferry.converters.checkpoint import open_source
from tensorferry.fixtures import autonamed as twins
from tensorferry.fixtures import keras3_twins as k3
from tensorferry.fixtures import nnx_twins as nt

TOLERANCE = 5e-5


def _torch(family: str):
    return nt.torch_lstm() if family == "lstm" else getattr(twins, f"torch_{family}")()


def _inputs(family: str):
    return twins.inputs_rnn() if family == "lstm" else getattr(twins, f"inputs_{family}")()


def _restore(path, model):
    import orbax.checkpoint as ocp
    from flax import nnx

    state = ocp.StandardCheckpointer().restore(path.absolute(), nnx.state(model))
    nnx.update(model, state)
    return model


@pytest.fixture(scope="module", params=nt.FAMILIES)
def case(request, tmp_path_factory):
    import torch

    family = request.param
    d = tmp_path_factory.mktemp(f"nnx-{family}")
    model = _torch(family)
    torch.save(model.state_dict(), d / "model.pt")
    inputs = _inputs(family)
    result = convert(d / "model.pt", d / "out", to=["flax"], models={"flax": getattr(nt, family)()})
    return {"family": family, "dir": d, "inputs": inputs, "expected": twins.run("pt", model, inputs), "result": result}


def test_orbax_checkpoint_restores_into_the_nnx_model(case):
    from flax import nnx

    assert case["result"].outputs["flax"].files == ["nnx/"]
    template = getattr(nt, case["family"])()
    before = nt.run(template, case["inputs"])
    rng_before = {p: np.asarray(v.get_value()) for p, v in nnx.to_flat_state(nnx.state(template, nnx.RngCount))}
    model = _restore(case["dir"] / "out" / "nnx", template)
    assert float(np.abs(before - case["expected"]).max()) > 1e-3
    assert float(np.abs(nt.run(model, case["inputs"]) - case["expected"]).max()) <= TOLERANCE
    rng_after = {p: np.asarray(v.get_value()) for p, v in nnx.to_flat_state(nnx.state(model, nnx.RngCount))}
    assert rng_after == rng_before and (case["family"] != "lstm" or rng_after)  # RNG counters from the template


def test_orbax_checkpoint_back_to_pytorch_strictly(case):
    import torch

    torch_model = _torch(case["family"])
    out = case["dir"] / "back"
    convert(case["dir"] / "out" / "nnx", out, to=["pt"], models={"pt": torch_model, "flax": getattr(nt, case["family"])()})
    torch_model.load_state_dict({k: torch.from_numpy(v) for k, v in load_file(out / "model.safetensors").items()}, strict=True)
    assert float(np.abs(twins.run("pt", torch_model, case["inputs"]) - case["expected"]).max()) <= TOLERANCE


def test_orbax_source_without_structure_names_leaves_and_skips_rng_state(case):
    source = open_source(case["dir"] / "out" / "nnx")
    assert source.framework == "flax" and not any("rngs" in n or n.endswith("/count") for n in source.infos)
    if case["family"] == "lstm":
        assert "layers/0/forward_rnn/cell/if/kernel" in source.infos  # NNX's if_ read as linen's if
    if case["family"] == "block":  # five LayerNorms alike and a sorted tree: the NNX model must say the order
        with pytest.raises(LayoutError, match="creation order") as err:
            convert(source, case["dir"] / "nope", to=["pt"], models={"pt": _torch("block")})
        assert "--model flax=" in str(err.value)


def test_linen_msgpack_to_nnx(tmp_path):
    import torch

    model = nt.torch_lstm()
    torch.save(model.state_dict(), tmp_path / "model.pt")
    convert(tmp_path / "model.pt", tmp_path / "linen", to=["flax"])  # general names: flax_model.msgpack (linen)
    convert(tmp_path / "linen" / "flax_model.msgpack", tmp_path / "nnx", to=["flax"], models={"flax": nt.lstm()})
    inputs = twins.inputs_rnn()
    got = nt.run(_restore(tmp_path / "nnx" / "nnx", nt.lstm()), inputs)
    assert float(np.abs(got - twins.run("pt", model, inputs)).max()) <= TOLERANCE


def test_keras3_to_nnx_and_back(tmp_path):
    keras_model = k3.cnn()
    for i, v in enumerate(keras_model.weights):
        x = np.random.default_rng(i).standard_normal(tuple(v.shape)).astype("float32") * 0.3
        v.assign(np.abs(x) + 0.5 if "variance" in v.path else x)
    keras_model.save_weights(str(tmp_path / "model.weights.h5"))
    inputs = twins.inputs_cnn()
    expected = k3.run(keras_model, inputs)
    convert(tmp_path / "model.weights.h5", tmp_path / "nnx", to=["flax"], models={"flax": nt.cnn()})
    assert float(np.abs(nt.run(_restore(tmp_path / "nnx" / "nnx", nt.cnn()), inputs) - expected).max()) <= TOLERANCE
    fresh = k3.cnn()
    convert(tmp_path / "nnx" / "nnx", tmp_path / "k3", to=["tf"], models={"tf": fresh, "flax": nt.cnn()})
    fresh.load_weights(str(tmp_path / "k3" / "model.weights.h5"))
    assert float(np.abs(k3.run(fresh, inputs) - expected).max()) <= TOLERANCE


def test_bfloat16_is_kept_pytorch_to_nnx_to_keras3(tmp_path):
    import ml_dtypes
    import torch

    model = twins.torch_cnn().to(torch.bfloat16)
    torch.save(model.state_dict(), tmp_path / "model.pt")
    convert(tmp_path / "model.pt", tmp_path / "nnx", to=["flax"], models={"flax": nt.cnn("bfloat16")})
    restored = _restore(tmp_path / "nnx" / "nnx", nt.cnn("bfloat16"))
    kernel = np.asarray(restored.convs[0].kernel.get_value())
    want = model.features[0].weight.detach().permute(2, 3, 1, 0).float().numpy().astype(ml_dtypes.bfloat16)
    assert kernel.dtype == ml_dtypes.bfloat16 and kernel.tobytes() == want.tobytes()
    keras_model = k3.cnn("bfloat16")  # NNX (Orbax, bf16) → Keras 3 (bf16 datasets)
    convert(tmp_path / "nnx" / "nnx", tmp_path / "k3", to=["tf"], models={"tf": keras_model, "flax": nt.cnn("bfloat16")})
    keras_model.load_weights(str(tmp_path / "k3" / "model.weights.h5"))
    got = np.asarray(keras_model.get_layer(index=1).kernel.numpy()).astype(ml_dtypes.bfloat16)
    assert got.tobytes() == want.tobytes()


def test_a_killed_runs_partial_outputs_are_removed(tmp_path):
    import torch

    torch.save(twins.torch_cnn().state_dict(), tmp_path / "model.pt")
    out = tmp_path / "out"
    (out / ".nnx.999999999-dead.partial" / "d").mkdir(parents=True)  # pid 999999999 runs nowhere
    (out / ".model.weights.h5.999999999-dead.partial").write_bytes(b"half")
    (out / ".nnx.1-live.partial").mkdir()  # pid 1 is alive: another run's, left alone
    convert(tmp_path / "model.pt", out, to=["tf", "flax"], models={"tf": k3.cnn(), "flax": nt.cnn()})
    assert sorted(p.name for p in out.iterdir()) == [".nnx.1-live.partial", "model.weights.h5", "nnx"]
