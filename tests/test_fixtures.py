"""The fixture twins: shipped checkpoints, and the variable names each framework's twin has.

The name tables below ARE the naming convention the converter implements, written out per
family: Keras `{model}/a/b_._0/c/{leaf}:0` (ModuleList index glued with `_._`), Flax
`a/b/0/c/{leaf}` per collection. Each row also names the PyTorch tensors it comes from, so
the tables are checked against the PyTorch state dict too (every tensor accounted for).
"""

from __future__ import annotations

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

from safetensors import safe_open
from safetensors.torch import load_file, load_model

from tensorferry.fixtures import FAMILIES, checkpoint_dir
from tensorferry.fixtures.generate import NUM_BATCHES_TRACKED, generate

# PyTorch tensors with no TF/Flax counterpart, per family.
DROPPED = {
    "cnn": {"bn1.num_batches_tracked", "bn2.num_batches_tracked"},
    "transformer": {"lm_head.weight"},  # tied to embeddings.word_embeddings.weight
    "recurrent": set(),
}


def _ln(keras_path: str, torch_path: str) -> list[tuple[str, tuple[str, ...]]]:
    return [(f"{keras_path}/gamma:0", (f"{torch_path}.weight",)), (f"{keras_path}/beta:0", (f"{torch_path}.bias",))]


def _keras_layer(i: int) -> list[tuple[str, tuple[str, ...]]]:
    k, t = f"encoder/layer_._{i}", f"encoder.layer.{i}"
    rows = []
    for proj in ("query", "key", "value", "output"):
        rows += [(f"{k}/attention/{proj}/kernel:0", (f"{t}.attention.{proj}.weight",)),
                 (f"{k}/attention/{proj}/bias:0", (f"{t}.attention.{proj}.bias",))]
    rows += _ln(f"{k}/attention_norm", f"{t}.attention_norm")
    for fc in ("fc_in", "fc_out"):
        rows += [(f"{k}/mlp/{fc}/kernel:0", (f"{t}.mlp.{fc}.weight",)), (f"{k}/mlp/{fc}/bias:0", (f"{t}.mlp.{fc}.bias",))]
    return rows + _ln(f"{k}/mlp_norm", f"{t}.mlp_norm")


# Keras: (name without the model prefix, PyTorch sources), in `model.weights` order, i.e. per
# top-level layer trainable weights then non-trainable ones: the order of the h5 file.
KERAS_NAMES: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    "cnn": [
        ("conv/kernel:0", ("conv.weight",)), ("conv/bias:0", ("conv.bias",)),
        ("bn1/gamma:0", ("bn1.weight",)), ("bn1/beta:0", ("bn1.bias",)),
        ("bn1/moving_mean:0", ("bn1.running_mean",)), ("bn1/moving_variance:0", ("bn1.running_var",)),
        ("dw/depthwise_kernel:0", ("dw.weight",)), ("dw/bias:0", ("dw.bias",)),
        ("bn2/gamma:0", ("bn2.weight",)), ("bn2/beta:0", ("bn2.bias",)),
        ("bn2/moving_mean:0", ("bn2.running_mean",)), ("bn2/moving_variance:0", ("bn2.running_var",)),
        ("up/kernel:0", ("up.weight",)), ("up/bias:0", ("up.bias",)),
        ("head/kernel:0", ("head.weight",)), ("head/bias:0", ("head.bias",)),
    ],
    "transformer": [
        ("embeddings/word_embeddings/embeddings:0", ("embeddings.word_embeddings.weight",)),
        ("embeddings/position_embeddings/embeddings:0", ("embeddings.position_embeddings.weight",)),
        *_ln("embeddings/LayerNorm", "embeddings.LayerNorm"),
        ("embeddings/position_ids:0", ("embeddings.position_ids",)),  # non-trainable: last in its group
        ("encoder/logit_scale:0", ("encoder.logit_scale",)),
        *_keras_layer(0),
        *_keras_layer(1),
        ("lm_head/bias:0", ("lm_head.bias",)),  # the weight is the embedding matrix, not a variable
    ],
    "recurrent": [
        ("conv/kernel:0", ("conv.weight",)), ("conv/bias:0", ("conv.bias",)),
        ("lstm/lstm_cell/kernel:0", ("lstm.weight_ih_l0",)),
        ("lstm/lstm_cell/recurrent_kernel:0", ("lstm.weight_hh_l0",)),
        ("lstm/lstm_cell/bias:0", ("lstm.bias_ih_l0", "lstm.bias_hh_l0")),  # summed
        ("gru/gru_cell/kernel:0", ("gru.weight_ih_l0",)),
        ("gru/gru_cell/recurrent_kernel:0", ("gru.weight_hh_l0",)),
        ("gru/gru_cell/bias:0", ("gru.bias_ih_l0", "gru.bias_hh_l0")),  # stacked (2, 3H)
        ("head/kernel:0", ("head.weight",)), ("head/bias:0", ("head.bias",)),
    ],
}
KERAS_NON_TRAINABLE = {
    "cnn": {"bn1/moving_mean:0", "bn1/moving_variance:0", "bn2/moving_mean:0", "bn2/moving_variance:0"},
    "transformer": {"embeddings/position_ids:0"},
    "recurrent": set(),
}


def _flax_layer(i: int) -> list[tuple[str, tuple[str, ...]]]:
    f, t = f"params/encoder/layer/{i}", f"encoder.layer.{i}"
    rows = []
    for proj in ("query", "key", "value", "output"):
        rows += [(f"{f}/attention/{proj}/kernel", (f"{t}.attention.{proj}.weight",)),
                 (f"{f}/attention/{proj}/bias", (f"{t}.attention.{proj}.bias",))]
    for norm in ("attention_norm", "mlp_norm"):
        rows += [(f"{f}/{norm}/scale", (f"{t}.{norm}.weight",)), (f"{f}/{norm}/bias", (f"{t}.{norm}.bias",))]
    for fc in ("fc_in", "fc_out"):
        rows += [(f"{f}/mlp/{fc}/kernel", (f"{t}.mlp.{fc}.weight",)), (f"{f}/mlp/{fc}/bias", (f"{t}.mlp.{fc}.bias",))]
    return rows


# Flax: "collection/path/leaf" → PyTorch sources (order irrelevant: compared as a mapping).
FLAX_PATHS: dict[str, dict[str, tuple[str, ...]]] = {
    "cnn": {
        "params/conv/kernel": ("conv.weight",), "params/conv/bias": ("conv.bias",),
        "params/bn1/scale": ("bn1.weight",), "params/bn1/bias": ("bn1.bias",),
        "batch_stats/bn1/mean": ("bn1.running_mean",), "batch_stats/bn1/var": ("bn1.running_var",),
        "params/dw/kernel": ("dw.weight",), "params/dw/bias": ("dw.bias",),
        "params/bn2/scale": ("bn2.weight",), "params/bn2/bias": ("bn2.bias",),
        "batch_stats/bn2/mean": ("bn2.running_mean",), "batch_stats/bn2/var": ("bn2.running_var",),
        "params/up/kernel": ("up.weight",), "params/up/bias": ("up.bias",),  # kernel flipped spatially
        "params/head/kernel": ("head.weight",), "params/head/bias": ("head.bias",),
    },
    "transformer": {
        "params/embeddings/word_embeddings/embedding": ("embeddings.word_embeddings.weight",),
        "params/embeddings/position_embeddings/embedding": ("embeddings.position_embeddings.weight",),
        "params/embeddings/LayerNorm/scale": ("embeddings.LayerNorm.weight",),
        "params/embeddings/LayerNorm/bias": ("embeddings.LayerNorm.bias",),
        "buffers/embeddings/position_ids": ("embeddings.position_ids",),
        "params/encoder/logit_scale": ("encoder.logit_scale",),
        **dict(_flax_layer(0)),
        **dict(_flax_layer(1)),
        "params/lm_head/bias": ("lm_head.bias",),  # weight: word_embeddings via embed.attend
    },
    "recurrent": {
        "params/conv/kernel": ("conv.weight",), "params/conv/bias": ("conv.bias",),
        # LSTM gates i, f, g, o: input kernels without bias, hidden kernels with b_ih + b_hh.
        **{f"params/lstm/i{g}/kernel": ("lstm.weight_ih_l0",) for g in "ifgo"},
        **{f"params/lstm/h{g}/kernel": ("lstm.weight_hh_l0",) for g in "ifgo"},
        **{f"params/lstm/h{g}/bias": ("lstm.bias_ih_l0", "lstm.bias_hh_l0") for g in "ifgo"},
        # GRU gates r, z, n: r/z biases summed on the input side; n keeps b_in and b_hn apart.
        **{f"params/gru/i{g}/kernel": ("gru.weight_ih_l0",) for g in "rzn"},
        **{f"params/gru/h{g}/kernel": ("gru.weight_hh_l0",) for g in "rzn"},
        "params/gru/ir/bias": ("gru.bias_ih_l0", "gru.bias_hh_l0"),
        "params/gru/iz/bias": ("gru.bias_ih_l0", "gru.bias_hh_l0"),
        "params/gru/in/bias": ("gru.bias_ih_l0",),
        "params/gru/hn/bias": ("gru.bias_hh_l0",),
        "params/head/kernel": ("head.weight",), "params/head/bias": ("head.bias",),
    },
}

FAMILY_NAMES = sorted(FAMILIES)


@pytest.fixture(scope="module")
def shipped_torch():
    """family → PyTorch twin loaded from the shipped checkpoint."""
    models = {}
    for family, module in FAMILIES.items():
        model = module.torch_model(module.CONFIG)
        load_model(model, str(checkpoint_dir(family) / "model.safetensors"))  # strict
        models[family] = model
    return models


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_shipped_checkpoint_files(family: str) -> None:
    folder, module = checkpoint_dir(family), FAMILIES[family]
    assert json.loads((folder / "config.json").read_text()) == module.CONFIG
    assert module.CONFIG["model_type"].startswith("tensorferry-tiny-")
    weights = folder / "model.safetensors"
    assert weights.stat().st_size < 1_000_000
    with safe_open(str(weights), "np") as f:
        keys = set(f.keys())
    state = set(module.torch_model(module.CONFIG).state_dict())
    # save_model drops exactly the tied duplicate, keeping the embedding's name.
    assert state - keys == ({"lm_head.weight"} if family == "transformer" else set())


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_torch_twin_outputs_are_deterministic(family: str, shipped_torch) -> None:
    module, model = FAMILIES[family], shipped_torch[family]
    inputs = module.example_inputs()
    first, second = module.run_torch(model, inputs), module.run_torch(model, module.example_inputs())
    assert first.dtype == np.float32 and np.isfinite(first).all()
    np.testing.assert_array_equal(first, second)
    # A freshly initialised twin computes something else: the checkpoint really was loaded.
    assert not np.allclose(first, module.run_torch(module.torch_model(module.CONFIG), inputs), atol=1e-3)
    # Different inputs, different outputs (the model does not collapse to a constant).
    assert not np.allclose(first, module.run_torch(model, module.example_inputs(seed=1)), atol=1e-4)


def test_transformer_checkpoint_quirks(shipped_torch) -> None:
    model = shipped_torch["transformer"]
    assert model.lm_head.weight is model.embeddings.word_embeddings.weight  # still tied after loading
    tensors = load_file(str(checkpoint_dir("transformer") / "model.safetensors"))
    assert tensors["embeddings.position_ids"].dtype.is_floating_point is False
    assert str(tensors["embeddings.position_ids"].dtype) == "torch.int64"
    assert tensors["embeddings.position_ids"].tolist() == [list(range(16))]
    assert tensors["encoder.logit_scale"].shape == () and tensors["encoder.logit_scale"].item() != 1.0


def test_cnn_and_rnn_checkpoint_quirks() -> None:
    cnn = load_file(str(checkpoint_dir("cnn") / "model.safetensors"))
    for bn in ("bn1", "bn2"):
        assert cnn[f"{bn}.num_batches_tracked"].item() == NUM_BATCHES_TRACKED
        assert cnn[f"{bn}.running_mean"].abs().min() > 0 and not (cnn[f"{bn}.running_var"] == 1).any()
    rnn = load_file(str(checkpoint_dir("recurrent") / "model.safetensors"))
    for key in ("lstm.bias_ih_l0", "lstm.bias_hh_l0", "gru.bias_ih_l0", "gru.bias_hh_l0"):
        assert rnn[key].abs().min() > 0, key


def test_generator_reproduces_shipped_checkpoints(tmp_path) -> None:
    generate(tmp_path)
    for family in FAMILY_NAMES:
        fresh = load_file(str(tmp_path / family / "model.safetensors"))
        shipped = load_file(str(checkpoint_dir(family) / "model.safetensors"))
        assert fresh.keys() == shipped.keys()
        for key in shipped:
            assert fresh[key].equal(shipped[key]), (family, key)
        assert (tmp_path / family / "config.json").read_text() == (checkpoint_dir(family) / "config.json").read_text()


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_name_tables_cover_the_torch_state_dict(family: str) -> None:
    """Every PyTorch tensor (bar the dropped ones) feeds some Keras and some Flax variable."""
    module = FAMILIES[family]
    state = set(module.torch_model(module.CONFIG).state_dict())
    for table in (dict(KERAS_NAMES[family]), FLAX_PATHS[family]):
        sources = {s for srcs in table.values() for s in srcs}
        assert sources <= state
        assert state - sources == DROPPED[family]


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_keras_twin_variable_names(family: str) -> None:
    module = FAMILIES[family]
    model = module.keras_model(module.CONFIG)
    prefix = f"{module.KERAS_NAME}/"
    assert [w.name for w in model.weights] == [prefix + name for name, _ in KERAS_NAMES[family]]
    assert {w.name for w in model.non_trainable_weights} == {prefix + n for n in KERAS_NON_TRAINABLE[family]}
    # One h5 group per top-level Keras layer, in PyTorch's top-level module order.
    torch_top = list(dict.fromkeys(k.split(".")[0] for k in module.torch_model(module.CONFIG).state_dict()))
    assert [layer.name for layer in model.layers if layer.weights] == torch_top
    # Within each layer Keras orders trainable weights before non-trainable ones (h5 order).
    for layer in model.layers:
        assert [w.name for w in layer.weights] == [
            w.name for w in layer.trainable_weights + layer.non_trainable_weights
        ]


def test_keras_transformer_variable_kinds() -> None:
    import tensorflow as tf

    module = FAMILIES["transformer"]
    by_name = {w.name: w for w in module.keras_model(module.CONFIG).weights}
    position_ids = by_name["tf_tiny_transformer/embeddings/position_ids:0"]
    assert position_ids.dtype == tf.int64 and tuple(position_ids.shape) == (1, 16)
    assert tuple(by_name["tf_tiny_transformer/encoder/logit_scale:0"].shape) == ()


def _flax_paths(variables) -> dict[str, tuple[int, ...]]:
    import jax

    return {
        "/".join(str(k.key) for k in path): tuple(np.shape(leaf))
        for path, leaf in jax.tree_util.tree_flatten_with_path(variables)[0]
    }


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_flax_twin_variable_paths(family: str) -> None:
    module = FAMILIES[family]
    _, variables = module.flax_model(module.CONFIG)
    assert set(_flax_paths(variables)) == set(FLAX_PATHS[family])


def test_flax_shapes_follow_the_layout_rules() -> None:
    """Spot checks of the kernel layouts the converter must produce."""
    cnn = _flax_paths(FAMILIES["cnn"].flax_model()[1])
    assert cnn["params/conv/kernel"] == (3, 3, 3, 8)  # (kh, kw, I, O)
    assert cnn["params/dw/kernel"] == (3, 3, 1, 16)  # (kh, kw, I/groups, O)
    assert cnn["params/up/kernel"] == (3, 3, 16, 6)  # (kh, kw, I, O), transpose_kernel=False
    rnn = _flax_paths(FAMILIES["recurrent"].flax_model()[1])
    assert rnn["params/conv/kernel"] == (3, 4, 8)
    assert rnn["params/lstm/ii/kernel"] == (8, 12) and rnn["params/gru/hn/kernel"] == (10, 10)
    tr = _flax_paths(FAMILIES["transformer"].flax_model()[1])
    assert tr["buffers/embeddings/position_ids"] == (1, 16) and tr["params/encoder/logit_scale"] == ()
