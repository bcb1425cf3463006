"""TensorFlow: Keras-2 ``tf_model.h5`` in the layout transformers 4.x writes and reads.

Names: PyTorch ``encoder.layer.0.attention.query.weight`` is the Keras weight
``{model_name}/encoder/layer_._0/attention/query/kernel:0`` (an index joins its parent with
``_._``, as transformers' ModuleLists do); the model name is the first component and the h5
group is the second.  Kernels are channels-last: Dense ``(I, O)``, Conv ``(k…, I/g, O)``,
DepthwiseConv2D ``(kh, kw, C, mult)``, Conv2DTranspose ``(k…, O, I)``.

>>> LAYOUT.native_name("encoder.layer.0.query", "kernel")
'encoder/layer_._0/query/kernel'
>>> canonical_module("encoder/layer_._0/query")
'encoder.layer.0.query'
"""
from __future__ import annotations

import re

import numpy as np

from .. import ops
from ..kinds import WN_G, WN_V, Decision
from .base import BUFFERS, STATS, Layout, Leaf, Recurrent, channels_last, stacked, transposed
from ..constants import EXTRA
from ..moves import exact_sum, reorder_gates

NAME = "tf"
CAN_HOLD = {"float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "bool"}
WHY_NOT = "HDF5 has no bfloat16 or float8 type and Keras-2 h5 files cannot hold them"


def module_path(module: str) -> str:
    """PyTorch module name → Keras scope path (``layer.0`` → ``layer_._0``)."""
    out: list[str] = []
    for part in module.split(".") if module else []:
        if part.isdigit():
            out.append((out.pop() if out else "") + "_._" + part)
        else:
            out.append(part)
    return "/".join(out)


def canonical_module(path: str) -> str:
    """Keras scope path → PyTorch module name; the inverse of ``module_path``."""
    return ".".join(p for p in path.replace("_._", "/").split("/") if p)


def _depthwise(shape, d: Decision) -> ops.Op:
    # PyTorch (C·m, 1, kh, kw) → Keras (kh, kw, C, m); the split count only matters going forward.
    channels = shape[0] // (d.param("multiplier") or 1) if shape else 1
    return ops.parse(f"perm(2,3,1,0)|squeeze(2)|split(2,{channels})")


LEAVES: dict[str, list[Leaf]] = {
    "linear": [Leaf("kernel", "weight", transposed), Leaf("bias", "bias")],
    "embedding": [Leaf("embeddings", "weight")],
    "conv": [Leaf("kernel", "weight", channels_last), Leaf("bias", "bias")],
    "conv_transpose": [Leaf("kernel", "weight", channels_last), Leaf("bias", "bias")],  # (I,O,k…) → (k…,O,I): the same axes
    "depthwise": [Leaf("depthwise_kernel", "weight", _depthwise), Leaf("bias", "bias")],
    "norm": [Leaf("gamma", "weight"), Leaf("beta", "bias")],
    "batchnorm": [Leaf("gamma", "weight"), Leaf("beta", "bias"), Leaf("moving_mean", "running_mean", collection=STATS),
                  Leaf("moving_variance", "running_var", collection=STATS), Leaf(EXTRA, "num_batches_tracked")],
    # transformers' names for weight norm (g, v as PyTorch keeps them); the side-data copy of g
    # marks the parametrizations form, so it comes back as such (without it: weight_g/weight_v).
    "weight_norm": [Leaf("weight_g", WN_G), Leaf("weight_v", WN_V), Leaf("bias", "bias"), Leaf(EXTRA, WN_G, marker=True)],
    "param": [Leaf("", "")],
    "buffer": [Leaf("", "", collection=BUFFERS)],
}

# Keras GRU gates are z, r, h; PyTorch's are r, z, n.  LSTM gates agree (i, f, g/c, o).
GATE_ORDER = {"lstm": (0, 1, 2, 3), "gru": (1, 0, 2)}
CELL = {"lstm": "lstm_cell", "gru": "gru_cell"}


def _recurrent(kind: str) -> Recurrent:
    order, cell = GATE_ORDER[kind], CELL[kind]
    back = tuple(int(i) for i in np.argsort(order))

    def native_leaves(c):
        (g_h, h), dt = c["weight_hh_l0"]
        out = [(f"{cell}/kernel", c["weight_ih_l0"][0][::-1], dt), (f"{cell}/recurrent_kernel", (h, g_h), c["weight_hh_l0"][1])]
        if "bias_ih_l0" in c:
            out.append((f"{cell}/bias", (g_h,) if kind == "lstm" else (2, g_h), c["bias_ih_l0"][1]))
            if kind == "lstm":  # Keras keeps one summed bias; the parts ride along as side data
                out += [(f"{EXTRA}/bias_ih_l0", (g_h,), c["bias_ih_l0"][1]), (f"{EXTRA}/bias_hh_l0", (g_h,), c["bias_hh_l0"][1])]
        return out

    def to_native(w):
        out = {f"{cell}/kernel": reorder_gates(w["weight_ih_l0"], order).T, f"{cell}/recurrent_kernel": reorder_gates(w["weight_hh_l0"], order).T}
        if "bias_ih_l0" in w:
            b_ih, b_hh = reorder_gates(w["bias_ih_l0"], order), reorder_gates(w["bias_hh_l0"], order)
            if kind == "lstm":
                out[f"{cell}/bias"] = b_ih + b_hh
                out[f"{EXTRA}/bias_ih_l0"], out[f"{EXTRA}/bias_hh_l0"] = w["bias_ih_l0"], w["bias_hh_l0"]
            else:
                out[f"{cell}/bias"] = np.stack([b_ih, b_hh])
        return out

    def canonical_leaves(n):
        (i, g_h), dt = n[f"{cell}/kernel"]
        (h, _), dt_h = n[f"{cell}/recurrent_kernel"]
        if g_h != len(order) * h or set(n) - {f"{cell}/kernel", f"{cell}/recurrent_kernel", f"{cell}/bias"}:
            raise ValueError("not this recurrent kind")
        out = [("weight_ih_l0", (g_h, i), dt), ("weight_hh_l0", (g_h, h), dt_h)]
        if f"{cell}/bias" in n:
            bdt = n[f"{cell}/bias"][1]
            out += [("bias_ih_l0", (g_h,), bdt), ("bias_hh_l0", (g_h,), bdt)]
        return out

    def to_canonical(n):
        out = {"weight_ih_l0": reorder_gates(n[f"{cell}/kernel"].T, back), "weight_hh_l0": reorder_gates(n[f"{cell}/recurrent_kernel"].T, back)}
        if f"{cell}/bias" in n:
            bias = n[f"{cell}/bias"]
            if kind == "lstm":
                b_ih, b_hh, _ = exact_sum(bias, n.get(f"{EXTRA}/bias_ih_l0"), n.get(f"{EXTRA}/bias_hh_l0"))
            else:
                b_ih, b_hh = reorder_gates(bias[0], back), reorder_gates(bias[1], back)
            out["bias_ih_l0"], out["bias_hh_l0"] = b_ih, b_hh
        return out

    describe = f"Keras {cell}: gates {'i,f,c,o' if kind == 'lstm' else 'z,r,h (from r,z,n)'}, kernels transposed, " + (
        "bias = bias_ih + bias_hh (parts kept as side data)" if kind == "lstm" else "bias = stack(bias_ih, bias_hh)")
    return Recurrent(native_leaves, to_native, to_canonical, canonical_leaves, describe)


def _prefix(kind: str):
    # Several layers: one Keras layer per PyTorch layer, ``l{k}``; two directions: a Keras
    # Bidirectional around a layer named like the kind (its sublayers ``forward_lstm``, ``backward_lstm``).
    def prefix(k: int, d: str, layers: int, directions: int) -> str:
        return (f"l{k}/" if layers > 1 else "") + (("backward_" if d else "forward_") + kind + "/" if directions > 1 else "")
    return prefix


# A recurrent leaf read back: any Bidirectional sublayer name (``forward_lstm_3``) will do.
RNN_PATH = re.compile(r"(?:l(?P<layer>\d+)/)?(?:(?P<dir>forward|backward)_[^/]+/)?(?P<rest>(?:lstm|gru)_cell/[^/]+)")
LAYER_LEVEL = re.compile(r"l(\d+)")
LAYOUT = Layout(NAME, LEAVES, {k: stacked(_recurrent(k), len(GATE_ORDER[k]), _prefix(k), RNN_PATH) for k in GATE_ORDER},
                module_path, canonical_module)


def is_recurrent_leaf(leaf: str) -> bool:
    """Whether a leaf (relative to its module) is part of a recurrent cell.

    >>> is_recurrent_leaf("forward_lstm_2/lstm_cell/kernel"), is_recurrent_leaf("kernel")
    (True, False)
    """
    return RNN_PATH.fullmatch(leaf) is not None


def split_native(name: str) -> tuple[str, str]:
    """A Keras weight name (model name already removed) → (scope path, leaf).

    A cell's weights and its Bidirectional level belong to the recurrent module:
    >>> split_native("enc/rnn/forward_lstm/lstm_cell/kernel")
    ('enc/rnn', 'forward_lstm/lstm_cell/kernel')
    """
    parts = name.split("/")
    if len(parts) >= 2 and parts[-2] in CELL.values():
        cut = len(parts) - 2
        if cut >= 1 and re.fullmatch(r"(forward|backward)_.+", parts[cut - 1]):
            cut -= 1
        return "/".join(parts[:cut]), "/".join(parts[cut:])
    return "/".join(parts[:-1]), parts[-1]


def model_name(config: dict | None) -> str:
    """The Keras model name transformers would use: ``tf_`` + snake case of the architecture.

    >>> model_name({"architectures": ["BertForMaskedLM"]})
    'tf_bert_for_masked_lm'
    """
    arch = ((config or {}).get("architectures") or [None])[0]
    if not arch:
        return "model"
    name = re.sub(r"(.)([A-Z][a-z0-9]+)", r"\1_\2", "TF" + arch)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()
