"""Flax: ``flax_model.msgpack`` trees as ``flax.serialization`` and transformers 4.x write them.

Names: PyTorch ``encoder.layer.0.query.weight`` is the path ``encoder/layer/0/query/kernel``.
Parameters live in ``params``, BatchNorm statistics in ``batch_stats`` (``mean``/``var``) and
other buffers in ``buffers``; like transformers, a tree that only has parameters is saved bare,
otherwise each collection is a top-level key.  Kernels are channels-last like TF, but a depthwise
conv is a grouped ``nn.Conv`` and ``nn.ConvTranspose`` (``transpose_kernel=False``) holds the
PyTorch kernel flipped in space.  ``nn.LSTMCell``/``nn.GRUCell`` keep one Dense per gate.

>>> LAYOUT.native_name("encoder.layer.0.query", "kernel")
'encoder/layer/0/query/kernel'
"""
from __future__ import annotations

import re

import numpy as np

from .. import ops
from ..dtypes import same_bits
from ..kinds import WN_G, WN_V, Decision
from .base import BUFFERS, PARAMS, STATS, Layout, Leaf, Recurrent, channels_last, stacked, transposed
from ..constants import EXTRA
from ..moves import exact_sum

NAME = "flax"
COLLECTIONS = (PARAMS, STATS, BUFFERS)
CAN_HOLD = None  # msgpack stores any numpy/ml_dtypes dtype by name, bfloat16 included
WHY_NOT = ""


def module_path(module: str) -> str:
    return module.replace(".", "/")


def canonical_module(path: str) -> str:
    return path.replace("/", ".")


def _conv_transpose(shape, d: Decision) -> ops.Op:
    # PyTorch (I, O, k…) → (k…, I, O), flipped: flax's kernel is the one of the equivalent forward conv.
    n = len(shape) if shape else 4
    spatial = tuple(range(n - 2))
    return ops.parse(f"perm({','.join(map(str, tuple(range(2, n)) + (0, 1)))})|flip({','.join(map(str, spatial))})")


LEAVES: dict[str, list[Leaf]] = {
    "linear": [Leaf("kernel", "weight", transposed), Leaf("bias", "bias")],
    "embedding": [Leaf("embedding", "weight")],
    "conv": [Leaf("kernel", "weight", channels_last), Leaf("bias", "bias")],
    "depthwise": [Leaf("kernel", "weight", channels_last), Leaf("bias", "bias")],  # a grouped conv in flax
    "conv_transpose": [Leaf("kernel", "weight", _conv_transpose), Leaf("bias", "bias")],
    "norm": [Leaf("scale", "weight"), Leaf("bias", "bias")],
    "batchnorm": [Leaf("scale", "weight"), Leaf("bias", "bias"), Leaf("mean", "running_mean", collection=STATS),
                  Leaf("var", "running_var", collection=STATS), Leaf(EXTRA, "num_batches_tracked")],
    # transformers' names for weight norm (g, v as PyTorch keeps them); the side-data copy of g
    # marks the parametrizations form, so it comes back as such (without it: weight_g/weight_v).
    "weight_norm": [Leaf("weight_g", WN_G), Leaf("weight_v", WN_V), Leaf("bias", "bias"), Leaf(EXTRA, WN_G, marker=True)],
    "param": [Leaf("", "")],
    "buffer": [Leaf("", "", collection=BUFFERS)],
}

# One Dense per gate: input-side ``i?`` and hidden-side ``h?``, in PyTorch's gate order.
GATES = {"lstm": ("i", "f", "g", "o"), "gru": ("r", "z", "n")}


def _recurrent(kind: str) -> Recurrent:
    gates = GATES[kind]

    def names():
        kernels = [f"i{g}/kernel" for g in gates] + [f"h{g}/kernel" for g in gates]
        # LSTMCell: biases on the hidden side; GRUCell: on ir, iz, in and hn.
        biases = [f"h{g}/bias" for g in gates] if kind == "lstm" else ["ir/bias", "iz/bias", "in/bias", "hn/bias"]
        return kernels, biases

    def native_leaves(c):
        (g_h, i), dt = c["weight_ih_l0"]
        h = g_h // len(gates)
        kernels, biases = names()
        out = [(k, (i if k[0] == "i" else h, h), dt) for k in kernels]
        bdt = c.get("bias_ih_l0", (None, dt))[1]
        out += [(b, (h,), bdt) for b in biases]
        if "bias_ih_l0" in c:  # flax sums the two PyTorch biases: keep the parts as side data
            out += [(f"{EXTRA}/bias_ih_l0", (g_h,), bdt), (f"{EXTRA}/bias_hh_l0", (g_h,), bdt)]
        return out

    def to_native(w):
        w_ih = np.split(w["weight_ih_l0"], len(gates))
        w_hh = np.split(w["weight_hh_l0"], len(gates))
        h = w_hh[0].shape[0]
        zero = np.zeros(h, w["weight_ih_l0"].dtype)
        b_ih = np.split(w["bias_ih_l0"], len(gates)) if "bias_ih_l0" in w else [zero] * len(gates)
        b_hh = np.split(w["bias_hh_l0"], len(gates)) if "bias_hh_l0" in w else [zero] * len(gates)
        out = {}
        for n, g in enumerate(gates):
            out[f"i{g}/kernel"], out[f"h{g}/kernel"] = w_ih[n].T, w_hh[n].T
        if kind == "lstm":
            for n, g in enumerate(gates):
                out[f"h{g}/bias"] = b_ih[n] + b_hh[n]
        else:
            out["ir/bias"], out["iz/bias"] = b_ih[0] + b_hh[0], b_ih[1] + b_hh[1]
            out["in/bias"], out["hn/bias"] = b_ih[2], b_hh[2]
        if "bias_ih_l0" in w:
            out[f"{EXTRA}/bias_ih_l0"], out[f"{EXTRA}/bias_hh_l0"] = w["bias_ih_l0"], w["bias_hh_l0"]
        return out

    def canonical_leaves(n):
        kernels, biases = names()
        if set(n) != set(kernels) | set(biases):
            raise ValueError("not this recurrent kind")
        (i, h), dt = n[kernels[0]]
        g_h = h * len(gates)
        bdt = n[biases[0]][1]
        return [("weight_ih_l0", (g_h, i), dt), ("weight_hh_l0", (g_h, h), n[kernels[-1]][1]),
                ("bias_ih_l0", (g_h,), bdt), ("bias_hh_l0", (g_h,), bdt)]

    def to_canonical(n):
        out = {"weight_ih_l0": np.concatenate([n[f"i{g}/kernel"].T for g in gates]),
               "weight_hh_l0": np.concatenate([n[f"h{g}/kernel"].T for g in gates])}
        if kind == "lstm":
            total = np.concatenate([n[f"h{g}/bias"] for g in gates])
            out["bias_ih_l0"], out["bias_hh_l0"], _ = exact_sum(total, n.get(f"{EXTRA}/bias_ih_l0"), n.get(f"{EXTRA}/bias_hh_l0"))
        else:
            h = n["hn/bias"].shape[0]
            zero = np.zeros(h, n["hn/bias"].dtype)
            total_ih = np.concatenate([n["ir/bias"], n["iz/bias"], n["in/bias"]])
            total_hh = np.concatenate([zero, zero, n["hn/bias"]])
            side_ih, side_hh = n.get(f"{EXTRA}/bias_ih_l0"), n.get(f"{EXTRA}/bias_hh_l0")
            ok = side_ih is not None and side_hh is not None and same_bits(
                np.concatenate([side_ih[:2 * h] + side_hh[:2 * h], side_ih[2 * h:], side_hh[2 * h:]]),
                np.concatenate([total_ih[:2 * h], total_ih[2 * h:], total_hh[2 * h:]]))
            out["bias_ih_l0"], out["bias_hh_l0"] = (side_ih, side_hh) if ok else (total_ih, total_hh)
        return out

    describe = (f"flax {kind.upper()}Cell: one Dense per gate ({','.join(gates)}), kernels transposed, "
                + ("hidden bias = bias_ih + bias_hh" if kind == "lstm" else "ir/iz bias = bias_ih + bias_hh, in/hn keep their own")
                + " (parts kept as side data)")
    return Recurrent(native_leaves, to_native, to_canonical, canonical_leaves, describe)


def _prefix(k: int, d: str, layers: int, directions: int) -> str:
    # Several layers: ``l{k}``; two directions: linen's Bidirectional, ``forward_rnn/cell`` and ``backward_rnn/cell``.
    return (f"l{k}/" if layers > 1 else "") + (("backward" if d else "forward") + "_rnn/cell/" if directions > 1 else "")


RNN_LEAVES = {leaf.split("/")[0] for kind in GATES for leaf in (f"i{g}" for g in GATES[kind])} | {f"h{g}" for k in GATES for g in GATES[k]}
RNN_PATH = re.compile(r"(?:l(?P<layer>\d+)/)?(?:(?P<dir>forward|backward)_rnn/cell/)?(?P<rest>(?:%s)/(?:kernel|bias))" % "|".join(sorted(RNN_LEAVES)))
LAYER_LEVEL = re.compile(r"l(\d+)")
LAYOUT = Layout(NAME, LEAVES, {k: stacked(_recurrent(k), len(GATES[k]), _prefix, RNN_PATH) for k in GATES}, module_path, canonical_module)


def is_recurrent_leaf(leaf: str) -> bool:
    """Whether a leaf (relative to its module) is part of a recurrent cell.

    >>> is_recurrent_leaf("backward_rnn/cell/hf/bias"), is_recurrent_leaf("kernel")
    (True, False)
    """
    return RNN_PATH.fullmatch(leaf) is not None


def split_native(name: str, siblings: set[str]) -> tuple[str, str]:
    """A tree path (collection removed) → (module path, leaf); gate Denses belong to their cell.

    ``siblings`` are the child names of the parent path, which tell a cell from a module that
    merely has a child called ``in`` or ``hf``.
    """
    parts = name.split("/")
    if len(parts) >= 3 and parts[-2] in RNN_LEAVES and siblings and siblings <= RNN_LEAVES and len(siblings) >= 6:
        cut = len(parts) - 2
        if cut >= 3 and parts[cut - 1] == "cell" and parts[cut - 2] in ("forward_rnn", "backward_rnn"):
            cut -= 2
        return "/".join(parts[:cut]), "/".join(parts[cut:])
    return "/".join(parts[:-1]), parts[-1]
