"""Keras 3 ``model.weights.h5`` paths as Keras-2 style weight names, so the TF layout rules read them.

Keras 3 (``keras/src/saving/saving_lib.py``) stores a layer's variables as ``<path>/vars/<i>``:
numbered, not named, trainable first.  ``<path>`` is ``layers/<class_snake>[_N]`` inside a
Functional/Sequential model, the attribute name inside a subclassed one, with RNN internals as
``cell``, ``forward_layer`` and ``backward_layer``.  A group's ``vars`` carries the layer's own
name (``attrs["name"]``), which is how classes are recognised when a path is an attribute name.

The name given to dataset ``layers/bidirectional/forward_layer/cell/vars/0`` is
``bidirectional/forward_lstm/lstm_cell/kernel``: the module path comes from the group path alone
(so writer and reader agree on side-data names), the leaf from the model's variable when a model
is known, else from ``VARIABLES`` by class.

>>> native_name("layers/dense_2/vars/1", {"layers/dense_2": "head"})
'dense_2/bias'
>>> native_name("layers/lstm/cell/vars/0", {"layers/lstm/cell": "lstm_cell"})
'lstm/lstm_cell/kernel'
>>> native_name("blocks/block_1/ln1/vars/0", {"blocks/block_1/ln1": "layer_normalization_3"})
'blocks/block_1/ln1/gamma'
>>> native_name("vars/0", {"": "transformer"})
'vars_0'
"""
from __future__ import annotations

import re

# The variables of a layer class (snake-cased, as Keras names auto-named layers), in the order
# ``save_own_variables`` numbers them.  A layer without bias stores a prefix of the list; norms
# without centre or scale cannot be told apart by count and need the model (``--model tf=…``).
VARIABLES: dict[str, list[str]] = {
    "dense": ["kernel", "bias"], "einsum_dense": ["kernel", "bias"], "embedding": ["embeddings"],
    "conv1d": ["kernel", "bias"], "conv2d": ["kernel", "bias"], "conv3d": ["kernel", "bias"],
    "conv1d_transpose": ["kernel", "bias"], "conv2d_transpose": ["kernel", "bias"], "conv3d_transpose": ["kernel", "bias"],
    "depthwise_conv2d": ["depthwise_kernel", "bias"],
    "batch_normalization": ["gamma", "beta", "moving_mean", "moving_variance"],
    "layer_normalization": ["gamma", "beta"], "group_normalization": ["gamma", "beta"],
    "lstm_cell": ["kernel", "recurrent_kernel", "bias"], "gru_cell": ["kernel", "recurrent_kernel", "bias"],
}
# Layers whose full variable list is needed to read a shorter one (no prefix rule).
EXACT = {"batch_normalization", "layer_normalization", "group_normalization"}
# Keras 3 variable names that Keras 2 (and so the TF layout) names otherwise, per class.
RENAMED = {"DepthwiseConv2D": {"kernel": "depthwise_kernel"}}
# Path components inside an RNN layer, and the Keras-2 scope each stands for.
WRAPPERS = ("cell", "forward_layer", "backward_layer")
_AUTO = re.compile(r"(?P<cls>[a-z][a-z0-9_]*?)(?:_\d+)?")


def class_of(component: str, name: str | None) -> str | None:
    """The snake-cased class of a layer from its Keras name (auto-named) or its path component.

    >>> class_of("ln1", "layer_normalization_2"), class_of("dense_3", "head"), class_of("head", "head")
    ('layer_normalization', 'dense', None)
    """
    for text in (name, component):
        m = _AUTO.fullmatch(text or "")
        if m and m.group("cls") in VARIABLES:
            return m.group("cls")
    return None


def split(dataset: str) -> tuple[str, int]:
    """``layers/dense/vars/1`` → (``layers/dense``, 1); a model's own ``vars/0`` → (``""``, 0)."""
    group, _, index = dataset.rpartition("/")
    group = group.removesuffix("vars").rstrip("/")
    return group, int(index)


def scope(group: str, names: dict[str, str]) -> tuple[str, str]:
    """A group path → (module path, leaf prefix): ``layers/bidirectional/forward_layer/cell`` →
    (``bidirectional``, ``forward_lstm/lstm_cell/``)."""
    parts = [p for p in group.split("/") if p and p != "layers"] if group else []
    raw = group.split("/") if group else []
    cut = next((i for i, p in enumerate(parts) if p in WRAPPERS), len(parts))
    prefix = []
    for i, part in enumerate(parts[cut:], cut):
        # the full group path of this component, to read its Keras name
        depth = [j for j, p in enumerate(raw) if p == part][-1] if part in raw else len(raw) - 1
        own = names.get("/".join(raw[:depth + 1]), "")
        if part == "cell":
            m = _AUTO.fullmatch(own or "")
            prefix.append(m.group("cls") if m and m.group("cls") in ("lstm_cell", "gru_cell") else "cell")
        else:
            side = part.split("_")[0]
            prefix.append(own if own.startswith(side + "_") else f"{side}_rnn")
    return "/".join(parts[:cut]), "".join(p + "/" for p in prefix)


def native_name(dataset: str, names: dict[str, str], leaf: str | None = None, count: int | None = None) -> str:
    """The Keras-2 style name of one dataset; ``leaf`` from the model when known.

    ``names``: group path → the Keras name in its ``vars`` attribute; ``count``: how many
    variables the group holds (a norm missing one is ambiguous without the model).
    """
    group, index = split(dataset)
    module, prefix = scope(group, names)
    if leaf is None:
        cls = class_of(prefix.rstrip("/").rsplit("/", 1)[-1] if prefix else (module.rsplit("/", 1)[-1] if module else ""),
                       names.get(group))
        table = VARIABLES.get(cls or "", [])
        if cls in EXACT and count is not None and count != len(table):
            table = []
        leaf = table[index] if index < len(table) else f"vars_{index}"
    return "/".join(p for p in (module, prefix + leaf) if p)
