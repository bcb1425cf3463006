"""End to end: the converter's TF and Flax files make the twins compute the PyTorch outputs.

For each family the shipped canonical checkpoint is converted with the public API, then
- the Keras twin loads `tf_model.h5` with Keras' own `load_weights` (Keras 2 h5, by order),
- the Flax twin restores `flax_model.msgpack` with `flax.serialization.from_bytes` (a
  params-only model's tree stored bare, as transformers does: see `flax_state`),
- the PyTorch twin loads the round-tripped `model.safetensors`,
and each reproduces the PyTorch outputs of the shipped checkpoint to fp32 max |Δ| ≤ 5e-5.
"""

from __future__ import annotations

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

from tensorferry.converters import convert
from tensorferry.fixtures import FAMILIES, checkpoint_dir, flax_state, flax_variables

TOLERANCE = 5e-5  # fp32 max |Δ| between frameworks
FAMILY_NAMES = sorted(FAMILIES)


@pytest.fixture(scope="module", params=FAMILY_NAMES)
def case(request, tmp_path_factory):
    """(family, twin module, converted folder, PyTorch reference outputs) for one family."""
    from safetensors.torch import load_model

    family = request.param
    module = FAMILIES[family]
    out = tmp_path_factory.mktemp(f"converted-{family}")
    convert(checkpoint_dir(family), out, to=["tf", "flax", "pt"])
    model = module.torch_model(module.CONFIG)
    load_model(model, str(checkpoint_dir(family) / "model.safetensors"))
    inputs = module.example_inputs()
    return family, module, out, inputs, module.run_torch(model, inputs)


def _max_delta(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).max())


def test_writes_every_target_and_the_config(case) -> None:
    family, module, out, _, _ = case
    for name in ("tf_model.h5", "flax_model.msgpack", "model.safetensors", "config.json"):
        assert (out / name).is_file(), name
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == module.CONFIG["model_type"]
    assert config["architectures"] == module.CONFIG["architectures"]


def test_keras_twin_loads_h5_and_matches_torch(case) -> None:
    import h5py

    family, module, out, inputs, expected = case
    model = module.keras_model(module.CONFIG)
    # Keras 2 loads h5 by order and ignores names, so first check both against the twin:
    # one group per top-level layer in model order, each listing the layer's weights in order.
    with h5py.File(out / "tf_model.h5", "r") as f:
        layers = [layer for layer in model.layers if layer.weights]
        assert [_str(n) for n in f.attrs["layer_names"]] == [layer.name for layer in layers]
        for layer in layers:
            assert [_str(n) for n in f[layer.name].attrs["weight_names"]] == [w.name for w in layer.weights]
    model.load_weights(str(out / "tf_model.h5"))  # Keras' own loader
    assert _max_delta(module.run_keras(model, inputs), expected) <= TOLERANCE


def _str(name) -> str:
    return name.decode() if isinstance(name, bytes) else str(name)


def _paths(tree) -> dict[str, tuple[int, ...]]:
    import jax

    return {
        "/".join(str(getattr(k, "key", k)) for k in path): tuple(np.shape(leaf))
        for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]
    }


def test_flax_twin_restores_msgpack_and_matches_torch(case) -> None:
    from flax import serialization

    family, module, out, inputs, expected = case
    flax_module, template = module.flax_model(module.CONFIG)
    data = (out / "flax_model.msgpack").read_bytes()
    # from_bytes checks neither shapes nor extra keys: every path the twin has must be in
    # the file with its shape. (Extra top-level entries are left alone: from_bytes ignores them.)
    want, got = _paths(flax_state(template)), _paths(serialization.msgpack_restore(data))
    assert {path: got.get(path) for path in want} == want
    variables = flax_variables(template, data)
    assert _max_delta(module.run_flax(flax_module, variables, inputs), expected) <= TOLERANCE


def test_torch_twin_loads_round_tripped_safetensors(case) -> None:
    from safetensors.torch import load_file, load_model

    family, module, out, inputs, expected = case
    model = module.torch_model(module.CONFIG)
    load_model(model, str(out / "model.safetensors"))  # strict: no missing or unexpected names
    shipped = load_file(str(checkpoint_dir(family) / "model.safetensors"))
    for key, value in load_file(str(out / "model.safetensors")).items():
        assert value.dtype == shipped[key].dtype and value.equal(shipped[key]), key
    np.testing.assert_array_equal(module.run_torch(model, inputs), expected)
