"""Both sides of a guided conversion as lists of layers: source units and target slots.

A *unit* is what the source offers one target layer: a canonical module (a Linear, a BatchNorm…),
one cell (layer k, direction d) of a recurrent module, or a lone tensor.  A *slot* is one layer
of the user's model with its variables, read from the live model (``keras``, ``flax``, ``torch``).
Both carry an order key: creation order where it is known, natural name order otherwise, with
``order_known`` saying whether two names' order can be trusted.

>>> natural_key("layers.10.fc") > natural_key("layers.9.fc")
True
>>> order_known("Dense_2", "Dense_10"), order_known("query", "key"), order_known("dense", "dense_1")
(True, False, True)
>>> tree = TreeOrder(["emb", "blocks.0.ln", "blocks.1.ln", "norm"])
>>> tree.known("blocks.1.ln", "norm"), tree.key("norm") > tree.key("blocks.1.ln")
(True, True)
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from .. import kinds
from ..kinds import Module

RECURRENT = tuple(kinds.GATES)
_AUTO = re.compile(r"(?P<stem>[A-Za-z]\w*?)_(?P<n>\d+)")


@dataclass
class Var:
    """One variable of the target model."""

    name: str  # the model's own name: Keras weight name (no ``:0``), Flax tree path, torch state-dict key
    leaf: str  # what it is inside its layer: ``kernel``, ``moving_mean``, ``forward/lstm_cell/bias``, ``hi/bias``
    shape: tuple[int, ...]
    dtype: str
    collection: str = "params"  # where the writer puts it (Keras: params = trainable; Flax: the collection)
    groups: tuple[str, ...] = ()  # Keras: the top-level layers listing it in their h5 group
    alias_of: str | None = None  # a tied copy of another variable (torch), filled from the same source


@dataclass
class Slot:
    """One layer of the target model (or one of its lone variables)."""

    label: str  # for messages: the layer's path or name
    cls: str  # its class, for messages: ``Conv2D``, ``nn.LSTM``, ``Dense (flax)``
    kinds: frozenset[str]  # the canonical kinds it can hold
    vars: list[Var]
    order: tuple  # sort key in the model's order
    ordered: bool  # whether ``order`` is creation order (else natural name order)
    module: str = ""  # the canonical module the general rules would read it back as (side-data names)
    cells: list[tuple[int, str]] = field(default_factory=list)  # recurrent: its own (layer, direction) per cell
    # recurrent: per cell (kind, input size, hidden size, bias, proj, direction); None matches anything
    cell_sigs: list[tuple] = field(default_factory=list)
    params: tuple[tuple[str, int], ...] = ()  # e.g. a Keras depthwise conv's multiplier
    note: str = ""  # why it cannot hold anything, when it cannot (Keras GRU reset_after=False)
    tree: TreeOrder | None = None  # where order is known by the tree's own key order (Flax)

    @property
    def path(self) -> str:
        return self.label


@dataclass
class Unit:
    """What the source offers one target layer."""

    module: str  # canonical module name (a lone tensor's full name)
    kinds: list[str]  # kinds it may be, in order of preference
    leaves: dict[str, tuple[tuple[int, ...], str]]  # leaf (cells: ``weight_ih_l0`` form) → spec
    names: dict[str, str]  # leaf → canonical tensor name
    order: tuple
    ordered: bool
    cell: tuple[int, str] | None = None  # recurrent: this unit is layer k, direction d of ``module``
    rnn: kinds.RNNShape | None = None
    tree: TreeOrder | None = None
    pre: object = None  # one tensor of a module the target keeps as loose variables: the layout's move for it

    @property
    def path(self) -> str:
        return self.module

    @property
    def label(self) -> str:
        if self.cell is None:
            return self.module
        k, d = self.cell
        return f"{self.module} (layer {k}{', reverse' if d else ''})"


def leaf_key(leaf: str) -> str:
    """A variable's place in its layer, with Bidirectional halves named alike (``forward_lstm_3`` → ``forward``).

    >>> leaf_key("forward_lstm_3/lstm_cell/kernel"), leaf_key("kernel")
    ('forward/lstm_cell/kernel', 'kernel')
    """
    return re.sub(r"^(forward|backward)_[^/]+", r"\1", leaf)


def cell_sig(kind: str, leaves: dict[str, tuple]) -> tuple:
    """(kind, input size, hidden size, bias, proj) of one cell in ``weight_ih_l0`` form.

    >>> cell_sig("gru", {"weight_ih_l0": ((15, 4), "float32"), "weight_hh_l0": ((15, 5), "float32")})
    ('gru', 4, 5, False, 0)
    """
    rows, inputs = leaves["weight_ih_l0"][0]
    hidden = rows // kinds.GATES[kind]
    proj = leaves["weight_hr_l0"][0][0] if "weight_hr_l0" in leaves else 0
    return (kind, inputs, hidden, "bias_ih_l0" in leaves, proj)


def natural_key(name: str, sep: str = ".") -> tuple:
    """Sort key reading digit runs as numbers: ``Dense_10`` after ``Dense_9``, ``layers.10`` after ``layers.9``."""
    return tuple(tuple((0, int(t)) if t.isdigit() else (1, t) for t in re.split(r"(\d+)", part) if t) for part in name.split(sep))


def order_known(a: str, b: str, sep: str = ".") -> bool:
    """Whether natural order says which of two names came first: they part at two numbers
    (``layers.0``/``layers.1``) or at two auto-names of one class (``Conv_0``/``Conv_1``,
    Keras' ``dense``/``dense_1``)."""
    for x, y in zip(a.split(sep), b.split(sep)):
        if x != y:
            return _siblings_known(x, y)
    return False


def _siblings_known(x: str, y: str) -> bool:
    if x.isdigit() and y.isdigit():
        return True
    mx, my = _AUTO.fullmatch(x), _AUTO.fullmatch(y)
    return (mx.group("stem") if mx else x) == (my.group("stem") if my else y) and bool(mx or my)


class TreeOrder:
    """The order of a tree's keys as listed (a Flax tree, an h5's layers), trusted where it is not sorted.

    ``module.init`` and Keras list children in creation order; a tree jax rebuilt, or a file
    written from sorted names, lists them sorted, which says nothing: there natural order and
    auto-names decide (``order_known``).
    """

    def __init__(self, names: list[str], sep: str = ".") -> None:
        self.sep = sep
        self.children: dict[tuple, list[str]] = {}
        for name in names:
            parts = tuple(name.split(sep))
            for i, part in enumerate(parts):
                kids = self.children.setdefault(parts[:i], [])
                if part not in kids:
                    kids.append(part)
        self.trusted = {node: kids != sorted(kids) for node, kids in self.children.items()}

    def key(self, path: str) -> tuple:
        parts = tuple(path.split(self.sep))
        out = []
        for i, part in enumerate(parts):
            kids = self.children.get(parts[:i], [])
            out.append((kids.index(part),) if self.trusted.get(parts[:i]) and part in kids else natural_key(part, self.sep))
        return tuple(out)

    def known(self, a: str, b: str) -> bool:
        pa, pb = a.split(self.sep), b.split(self.sep)
        for i, (x, y) in enumerate(zip(pa, pb)):
            if x != y:
                return bool(self.trusted.get(tuple(pa[:i]))) or _siblings_known(x, y)
        return False


def knows_order(a: "Unit | Slot", b: "Unit | Slot", sep: str) -> bool:
    """Whether the order of two units (or two slots) is known: creation order, the tree's own, or names."""
    if a.ordered and b.ordered:
        return True
    if a.tree is not None:
        return a.tree.known(a.path, b.path)
    return order_known(a.path, b.path, sep)


def units(modules: dict[str, Module], allowed: dict[str, list[str]], order: dict[str, tuple], ordered: bool,
          tree: TreeOrder | None = None) -> list[Unit]:
    """The source's units: one per module, one per cell of a recurrent module, one per lone tensor."""
    out = []
    for name, module in modules.items():
        kinds_ = allowed[name]
        key = order[name]
        full = {leaf: f"{name}.{leaf}" if name and leaf else (name or leaf) for leaf in module.leaves}
        rec = [k for k in kinds_ if k in RECURRENT]
        if rec:
            shape = kinds.rnn_shape(module.leaves, kinds.GATES[rec[0]])
            for i, (k, d) in enumerate(shape.cells()):
                leaves = {f"{base}_l0": module.leaves[f"{base}_l{k}{d}"] for base in kinds.RNN_BASES if f"{base}_l{k}{d}" in module.leaves}
                names = {f"{base}_l0": full[f"{base}_l{k}{d}"] for base in kinds.RNN_BASES if f"{base}_l{k}{d}" in module.leaves}
                out.append(Unit(name, rec, leaves, names, key + ((i,),), ordered, (k, d), shape, tree))
            continue
        out.append(Unit(name, kinds_, dict(module.leaves), full, key, ordered, tree=tree))
    return out
