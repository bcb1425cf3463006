"""A Flax linen variables tree as slots: what ``flax.serialization.from_bytes(variables, data)`` restores.

The tree ``module.init`` returns (``{"params": …, "batch_stats": …}``) or a bare params tree.
Modules are read from their leaves (a 2-D ``kernel`` is a Dense, ``scale``+``mean``/``var`` a
BatchNorm, ``ii``…``ho`` an LSTMCell); linen's auto-names (``Conv_0``, ``ConvTranspose_1``) settle
what leaves alone cannot.  ``module.init`` lists a module's children in creation order; where a
tree lists them sorted (jax rebuilt it) only natural order and auto-names tell (``Dense_10`` after
``Dense_9``): see ``structure.TreeOrder``.

>>> import numpy as np
>>> tree = {"params": {"Dense_0": {"kernel": np.zeros((3, 4)), "bias": np.zeros(4)}}}
>>> [(s.label, s.cls, [v.name for v in s.vars]) for s in slots(tree)]
[('Dense_0', 'Dense', ['params/Dense_0/kernel', 'params/Dense_0/bias'])]
"""
from __future__ import annotations

import re

import numpy as np

from ..layouts import flax as fx
from .structure import Slot, TreeOrder, Var, leaf_key

LSTM_GATES = {"ii", "if", "ig", "io", "hi", "hf", "hg", "ho"}
GRU_GATES = {"ir", "iz", "in", "hr", "hz", "hn"}
_AUTO = re.compile(r"(?P<cls>[A-Z]\w*?)_\d+")


def variables_of(given) -> dict:
    """The variables tree from what a factory returned: the tree, or ``(module, variables)``."""
    if isinstance(given, tuple) and len(given) == 2 and hasattr(given[1], "items"):
        given = given[1]
    if not hasattr(given, "items"):
        raise ValueError(f"expected the variables tree module.init returns (or a (module, variables) pair), got {type(given).__name__}")
    return given


def wrapped(tree) -> bool:
    """Whether TREE is ``{collection: …}`` (``params`` at the top, only subtrees there) or a bare params tree."""
    return "params" in tree and all(hasattr(v, "items") for v in tree.values())


def slots(given) -> list[Slot]:
    """Every module of the tree with its variables, in natural path order."""
    tree = variables_of(given)
    colls = list(tree) if wrapped(tree) else [None]
    merged: dict = {}
    for coll in colls:
        _merge(merged, tree[coll] if coll else tree, coll, ())
    out: list[Slot] = []
    _walk(merged, (), out, TreeOrder(list(_paths(merged, ())), "/"))
    return out


def _paths(node: dict, path: tuple):
    for key, value in node.items():
        yield "/".join(path + (key,))
        if isinstance(value, dict):
            yield from _paths(value, path + (key,))


def _merge(node: dict, tree, coll: str | None, path: tuple) -> None:
    # one tree of paths whose leaves remember their collection: a BatchNorm is one module
    for key in tree:
        value = tree[key]
        if hasattr(value, "items"):
            _merge(node.setdefault(str(key), {}), value, coll, path + (str(key),))
        else:
            node[str(key)] = (coll, value)


def _var(path: tuple, leaf: str, entry) -> Var:
    coll, value = entry
    name = "/".join(((coll,) if coll else ()) + path + (tuple(leaf.split("/")) if leaf else ()))
    dtype = getattr(value, "dtype", np.asarray(value).dtype)
    return Var(name, leaf_key(leaf), tuple(int(d) for d in np.shape(value)), getattr(dtype, "name", str(dtype)), coll or "params")


def _is_cell(node: dict) -> str | None:
    children = {k for k, v in node.items() if isinstance(v, dict)}
    if node and children == set(node) and (children == LSTM_GATES or children == GRU_GATES):
        return "lstm" if children == LSTM_GATES else "gru"
    return None


def _cell_vars(path: tuple, node: dict, prefix: str = "") -> list[Var]:
    return [_var(path, f"{prefix}{gate}/{leaf}", node[gate][leaf]) for gate in sorted(node) for leaf in sorted(node[gate])]


def _cell_sig(node: dict, kind: str, direction: str | None) -> tuple:
    first = node["ii" if kind == "lstm" else "ir"]["kernel"][1]
    inputs, hidden = np.shape(first)
    return (kind, int(inputs), int(hidden), None, 0, direction)


def _walk(node: dict, path: tuple, out: list[Slot], tree: TreeOrder) -> None:
    label = "/".join(path)
    key = tree.key(label)
    kind = _is_cell(node)
    if kind:
        out.append(Slot(label, f"{'LSTM' if kind == 'lstm' else 'GRU'}Cell", frozenset({kind}), _cell_vars(path, node), key, False,
                        fx.canonical_module(label), [(0, "")], [_cell_sig(node, kind, None)], tree=tree))
        return
    halves = {k: node[k].get("cell") for k in ("forward_rnn", "backward_rnn") if isinstance(node.get(k), dict)}
    if set(node) == {"forward_rnn", "backward_rnn"} and all(isinstance(c, dict) and _is_cell(c) for c in halves.values()):
        kinds_ = {_is_cell(c) for c in halves.values()}
        if len(kinds_) == 1:  # linen's Bidirectional (setup style): one module of two cells
            kind = kinds_.pop()
            variables = [v for k in ("forward_rnn", "backward_rnn") for v in _cell_vars(path, halves[k], f"{k}/cell/")]
            sigs = [_cell_sig(halves["forward_rnn"], kind, ""), _cell_sig(halves["backward_rnn"], kind, "_reverse")]
            out.append(Slot(label, f"Bidirectional({kind.upper()}Cell)", frozenset({kind}), variables, key, False,
                            fx.canonical_module(label), [(0, ""), (0, "_reverse")], sigs, tree=tree))
            return
    own = {k: v for k, v in node.items() if not isinstance(v, dict)}
    if own:
        slot = _module(path, own)
        if slot is not None:
            slot.order, slot.tree = key, tree
            out.append(slot)
        else:
            for leaf, entry in own.items():
                lone = "/".join(path + (leaf,))
                out.append(Slot(lone, "variable", frozenset({"param", "buffer"}), [_var(path + (leaf,), "", entry)],
                                tree.key(lone), False, fx.canonical_module(lone), tree=tree))
    for child in (k for k, v in node.items() if isinstance(v, dict)):
        _walk(node[child], path + (child,), out, tree)


def _module(path: tuple, own: dict) -> Slot | None:
    """A module of a known class read from its own leaves, or None (then they are lone variables)."""
    label = "/".join(path)
    names = set(own)
    shapes = {k: np.shape(v[1]) for k, v in own.items()}
    auto = _AUTO.fullmatch(path[-1]) if path else None
    cls = auto.group("cls") if auto else ""
    if names <= {"kernel", "bias"} and "kernel" in names:
        rank = len(shapes["kernel"])
        if rank == 2:
            kinds_, cls = {"linear"}, "Dense"
        elif rank in (3, 4, 5):
            kinds_ = {"conv_transpose"} if cls == "ConvTranspose" else {"conv", "depthwise"} if cls == "Conv" else {"conv", "depthwise", "conv_transpose"}
            cls = cls or "Conv/ConvTranspose"
        else:
            return None
    elif names == {"embedding"}:
        kinds_, cls = {"embedding"}, "Embed"
    elif {"mean", "var"} <= names <= {"mean", "var", "scale", "bias"}:
        kinds_, cls = {"batchnorm"}, "BatchNorm"
    elif "scale" in names and names <= {"scale", "bias"}:
        kinds_, cls = {"norm"}, cls or "LayerNorm"
    else:
        return None
    order = ["kernel", "embedding", "scale", "bias", "mean", "var"]
    variables = [_var(path, leaf, own[leaf]) for leaf in sorted(own, key=order.index)]
    return Slot(label, cls, frozenset(kinds_), variables, (), False, fx.canonical_module(label))
