"""A built tf_keras model as slots, and the h5 layout its own ``load_weights`` reads.

Keras 2's ``model.load_weights("x.h5")`` (``hdf5_format.load_weights_from_hdf5_group``) pairs
the file's groups that list weights with ``model.layers`` that have weights, in order, and assigns
each group's values to ``layer.trainable_weights + layer.non_trainable_weights`` by position; the
model's own variables come from ``top_level_model_weights``.  Names are not read, so the file
lists every top-level layer's weights in exactly that order.  Layer classes come from the class
hierarchy (a subclass of ``Conv2D`` is a conv), so nothing here imports TensorFlow.

>>> import tf_keras as keras
>>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, name="fc"), keras.layers.BatchNormalization(name="bn")])
>>> [(s.label, s.cls, [v.leaf for v in s.vars]) for s in slots(model)]
[('fc', 'Dense', ['kernel', 'bias']), ('bn', 'BatchNormalization', ['gamma', 'beta', 'moving_mean', 'moving_variance'])]
>>> layout(model)[1]
('bn', ['bn/gamma', 'bn/beta', 'bn/moving_mean', 'bn/moving_variance'])
"""
from __future__ import annotations

import re

from ..formats.h5_file import TOP_LEVEL
from ..layouts import tf
from .structure import Slot, Var, leaf_key

# Keras class (or a base class) → the canonical kind its weights hold.
CLASSES = {
    "Dense": "linear", "Embedding": "embedding",
    "Conv1D": "conv", "Conv2D": "conv", "Conv3D": "conv",
    "Conv1DTranspose": "conv_transpose", "Conv2DTranspose": "conv_transpose", "Conv3DTranspose": "conv_transpose",
    "DepthwiseConv2D": "depthwise",
    "LayerNormalization": "norm", "GroupNormalization": "norm", "BatchNormalization": "batchnorm",
    "LSTM": "lstm", "GRU": "gru", "Bidirectional": "bidirectional",
}


def keras_class(layer) -> str | None:
    """The first class of LAYER's hierarchy that ``CLASSES`` knows."""
    return next((c.__name__ for c in type(layer).__mro__ if c.__name__ in CLASSES), None)


def _name(variable) -> str:
    return re.sub(r":\d+$", "", variable.name)


def _legacy(layer) -> list:
    # What Keras' h5 loader assigns a top-level layer, in order.
    return list(layer.trainable_weights) + list(layer.non_trainable_weights)


def layout(model) -> list[tuple[str, list[str]]]:
    """The h5 groups Keras' loader expects: (layer name, its weight names in load order), model order."""
    out = [(layer.name, [_name(w) for w in _legacy(layer)]) for layer in model.layers]
    own = list(model._trainable_weights) + list(model._non_trainable_weights)
    return out + ([(TOP_LEVEL, [_name(w) for w in own])] if own else [])


def slots(model) -> list[Slot]:
    """Every weighted layer of MODEL (nested layers walked in tracking order) and its lone variables."""
    if not getattr(model, "built", False) or not model.weights:
        raise ValueError("the Keras model has no variables yet: build it (call it once on an input) in the factory")
    groups: dict[int, list[str]] = {}
    for layer in model.layers:
        for w in _legacy(layer):
            groups.setdefault(id(w), []).append(layer.name)
    for w in list(model._trainable_weights) + list(model._non_trainable_weights):
        groups.setdefault(id(w), []).append(TOP_LEVEL)
    names = [_name(w) for w in model.weights]
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"the Keras model has several variables named {twice[:3]}: give those layers distinct names")
    common = len({n.split("/", 1)[0] for n in names}) == 1 and all("/" in n for n in names)
    trainable = {id(w) for w in model.trainable_weights}
    out: list[Slot] = []
    seen: set[int] = set()

    def var(w, leaf: str) -> Var:
        return Var(_name(w), leaf, tuple(int(d) for d in w.shape), w.dtype.name if hasattr(w.dtype, "name") else str(w.dtype),
                   "params" if id(w) in trainable else "batch_stats", tuple(groups.get(id(w), ())))

    def reader_module(w) -> str:
        # the canonical module the general TF rules read this layer back as (names its side data)
        name = _name(w).split("/", 1)[1] if common else _name(w)
        return tf.canonical_module(tf.split_native(name)[0])

    def lone(weights) -> None:
        for w in weights:
            if id(w) not in seen:
                seen.add(id(w))
                out.append(Slot(_name(w), "variable", frozenset({"param", "buffer"}), [var(w, "")], (len(out),), True, reader_module(w)))

    def visit(layer) -> None:
        cls = keras_class(layer)
        weights = [w for w in layer.weights if id(w) not in seen]
        if cls and weights:
            seen.update(id(w) for w in weights)
            out.append(layer_slot(layer, cls, [var(w, _leaf(w, layer, cls)) for w in weights], len(out), reader_module(weights[0])))
            return
        lone(list(layer._trainable_weights) + list(layer._non_trainable_weights))
        for child in layer._flatten_layers(include_self=False, recursive=False):
            visit(child)

    for layer in model.layers:
        visit(layer)
    lone(list(model._trainable_weights) + list(model._non_trainable_weights))
    return out


def _leaf(w, layer, cls: str) -> str:
    parts = _name(w).split("/")
    if layer.name in parts:
        return leaf_key("/".join(parts[len(parts) - 1 - parts[::-1].index(layer.name) + 1:]))
    keep = {"LSTM": 2, "GRU": 2, "Bidirectional": 3}.get(cls, 1)
    return leaf_key("/".join(parts[-keep:]))


def layer_slot(layer, cls: str, variables: list[Var], index: int, module: str) -> Slot:
    """The slot of one Keras layer (Keras 2 or 3: the same layer classes), recurrent cells included."""
    kind = CLASSES[cls]
    slot = Slot(layer.name, cls, frozenset({kind}), variables, (index,), True, module)
    if kind == "depthwise":
        kernel = next(v for v in variables if v.leaf == "depthwise_kernel")
        slot.params = (("multiplier", kernel.shape[-1]),)
    if kind in ("lstm", "gru"):
        _cells(slot, [(layer, "_reverse" if layer.go_backwards else "")], kind)
    elif kind == "bidirectional":
        inner = keras_class(layer.forward_layer)
        slot.cls = f"Bidirectional({inner})"
        _cells(slot, [(layer.forward_layer, ""), (layer.backward_layer, "_reverse")], CLASSES.get(inner, ""))
    return slot


def _cells(slot: Slot, layers: list, kind: str) -> None:
    slot.kinds = frozenset({kind})
    slot.cells = [(0, "")] if len(layers) == 1 else [(0, ""), (0, "_reverse")]  # the virtual module it is written from
    for layer, direction in layers:
        cell = layer.cell
        if kind == "gru" and not getattr(cell, "reset_after", True):
            slot.note = "Keras GRU(reset_after=False) cannot hold a PyTorch GRU (its second bias): use reset_after=True"
        inputs, width = (int(d) for d in cell.kernel.shape)
        gates = 4 if kind == "lstm" else 3
        slot.cell_sigs.append((kind, inputs, width // gates, bool(cell.use_bias), 0, direction))
