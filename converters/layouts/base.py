"""The machinery the framework layouts share: leaf tables turned into moves, both ways.

A framework describes each kind as a list of ``Leaf`` rows (native leaf, canonical leaf, op);
recurrent kinds, whose tensors do not map one to one, bring a pair of functions instead.
``pt``, ``tf`` and ``flax`` each hold one ``Layout`` built from such tables.

>>> Leaf("kernel", "weight", transposed).forward((4, 3), None).shape((4, 3))
(3, 4)
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .. import kinds, ops
from ..kinds import Decision, Module
from ..constants import EXTRA
from ..errors import LayoutError
from ..moves import Move, single

# A collection says where a tensor lives: trained parameters, running statistics or buffers.
PARAMS, STATS, BUFFERS = "params", "batch_stats", "buffers"


def transposed(shape: tuple[int, ...] | None, decision: Decision) -> ops.Op:
    """Linear ``(O, I)`` ↔ Dense ``(I, O)``."""
    return ops.parse("T")


def channels_last(shape: tuple[int, ...] | None, decision: Decision) -> ops.Op:
    """Conv ``(O, I/g, k…)`` ↔ ``(k…, I/g, O)``, for any number of spatial axes."""
    return ops.conv_to_channels_last(len(shape) if shape else 4)


@dataclass(frozen=True)
class Leaf:
    """One row of a framework's table: canonical leaf ↔ native leaf through ``op``.

    ``op`` builds the canonical→native op from the canonical shape and the decision; for the
    way back it gets the native shape, of the same rank, and only its inverse is used.  ``native=EXTRA`` keeps the tensor as side data.
    """

    native: str
    canonical: str
    op: Callable[[tuple[int, ...] | None, Decision], ops.Op] | None = None
    collection: str = PARAMS
    marker: bool = False  # side data whose presence says the kind applies (read back from elsewhere)

    def forward(self, shape: tuple[int, ...] | None, decision: Decision) -> ops.Op:
        return self.op(shape, decision) if self.op else ops.IDENTITY


@dataclass(frozen=True)
class Recurrent:
    """A whole-module rule (LSTM, GRU): leaf specs and arrays, both ways.

    Native leaves named ``__tensorferry__/<canonical leaf>`` are side data that make the way
    back exact; ``to_canonical`` receives them under the same keys when the file has them.
    """

    native_leaves: Callable[[dict[str, tuple[tuple[int, ...], np.dtype]]], list[tuple[str, tuple[int, ...], np.dtype]]]
    to_native: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]
    to_canonical: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]
    canonical_leaves: Callable[[dict[str, tuple[tuple[int, ...], np.dtype]]], list[tuple[str, tuple[int, ...], np.dtype]]]
    describe: str


# The per-cell leaves of a recurrent module; a one-cell rule sees them with the suffix _l0.
CELL_LEAVES = kinds.RNN_BASES


def stacked(cell: Recurrent, gates: int, prefix: Callable[[int, str, int, int], str], parse: re.Pattern) -> Recurrent:
    """A rule for whole stacked and bidirectional modules, from a rule for one cell.

    Each (layer k, direction d) of ``weight_ih_l{k}{d}…`` goes through ``cell`` as if it were
    ``weight_ih_l0…``; its native leaves get ``prefix(k, d, layers, directions)`` (``""`` for a
    one-layer unidirectional module, so those keep their names) and side data keeps PyTorch's
    per-cell names.  ``parse`` reads a native leaf back: groups ``layer``, ``dir``
    (``forward``/``backward``) and ``rest``.

    >>> from tensorferry.converters.layouts import LAYOUTS
    >>> shapes = {"weight_ih": (6, 4), "weight_hh": (6, 2)}  # nn.GRU(4, 2, num_layers=2, bidirectional=True, bias=False)
    >>> specs = {f"{w}_l{k}{d}": (s, np.dtype("float32")) for w, s in shapes.items() for k in (0, 1) for d in ("", "_reverse")}
    >>> [n for n, _, _ in LAYOUTS["tf"].recurrent["gru"].native_leaves(specs)][:3]
    ['l0/forward_gru/gru_cell/kernel', 'l0/forward_gru/gru_cell/recurrent_kernel', 'l0/backward_gru/gru_cell/kernel']
    """

    def shape_of(specs: dict) -> kinds.RNNShape:
        shape = kinds.rnn_shape({k: (tuple(v[0]), "") for k, v in specs.items()}, gates)
        if shape is None:
            raise ValueError("not a stacked recurrent module")
        if shape.proj:
            raise ValueError(f"an LSTM with proj_size={shape.proj} (weight_hr_l…) has no counterpart in this framework")
        return shape

    def per_cell(values: dict, k: int, d: str) -> dict:
        return {f"{base}_l0": values[f"{base}_l{k}{d}"] for base in CELL_LEAVES if f"{base}_l{k}{d}" in values}

    def rename(leaf: str, k: int, d: str, shape: kinds.RNNShape) -> str:
        if leaf.startswith(EXTRA + "/"):
            return leaf.removesuffix("_l0") + f"_l{k}{d}"
        return prefix(k, d, shape.layers, shape.directions) + leaf

    def native_leaves(c):
        shape = shape_of(c)
        return [(rename(leaf, k, d, shape), s, dt) for k, d in shape.cells() for leaf, s, dt in cell.native_leaves(per_cell(c, k, d))]

    def to_native(w):
        shape = shape_of({k: (v.shape, v.dtype) for k, v in w.items()})
        return {rename(leaf, k, d, shape): arr for k, d in shape.cells() for leaf, arr in cell.to_native(per_cell(w, k, d)).items()}

    def cells_of(n: dict) -> dict[tuple[int, str], dict]:
        out: dict[tuple[int, str], dict] = {}
        layered = set()
        for leaf, value in n.items():
            m = parse.fullmatch(leaf)
            if not m:
                raise ValueError(f"not a recurrent leaf: {leaf}")
            layered.add(m.group("layer") is not None)
            out.setdefault((int(m.group("layer") or 0), "_reverse" if m.group("dir") == "backward" else ""), {})[m.group("rest")] = value
        layers = 1 + max(k for k, _ in out)
        if layered != {layers > 1}:
            raise ValueError("layer levels l0, l1, … only on modules of several layers")
        return out

    def canonical_leaves(n):
        out = []
        for (k, d), sub in sorted(cells_of(n).items()):
            out += [(leaf.removesuffix("_l0") + f"_l{k}{d}", s, dt) for leaf, s, dt in cell.canonical_leaves(sub)]
        shape_of({leaf: (s, dt) for leaf, s, dt in out})
        return out

    def to_canonical(n):
        native = {k: v for k, v in n.items() if not k.startswith(EXTRA + "/")}
        out = {}
        for (k, d), sub in cells_of(native).items():
            for base in ("bias_ih", "bias_hh"):
                if f"{EXTRA}/{base}_l{k}{d}" in n:
                    sub[f"{EXTRA}/{base}_l0"] = n[f"{EXTRA}/{base}_l{k}{d}"]
            out.update({leaf.removesuffix("_l0") + f"_l{k}{d}": arr for leaf, arr in cell.to_canonical(sub).items()})
        return out

    return Recurrent(native_leaves, to_native, to_canonical, canonical_leaves, cell.describe)


@dataclass
class Layout:
    """A framework's whole layout knowledge, as data plus two name functions."""

    name: str
    leaves: dict[str, list[Leaf]]
    recurrent: dict[str, Recurrent] = field(default_factory=dict)
    module_path: Callable[[str], str] = lambda m: m  # canonical module name → native path
    canonical_module: Callable[[str], str] = lambda p: p  # native path → canonical module name
    sep: str = "/"

    def native_name(self, module: str, leaf: str) -> str:
        path = self.module_path(module)
        return f"{path}{self.sep}{leaf}" if path and leaf else (path or leaf)

    # canonical → native ---------------------------------------------------------------
    def from_canonical(self, module: Module, decision: Decision, dtypes: dict[str, np.dtype]) -> list[tuple[Move, str]]:
        """Moves writing one canonical module in this layout, each with its collection."""
        cname = (lambda leaf: f"{module.name}.{leaf}" if module.name and leaf else (module.name or leaf))
        if decision.kind in self.recurrent:
            rule = self.recurrent[decision.kind]
            specs = {leaf: (shape, dtypes[cname(leaf)]) for leaf, (shape, _) in module.leaves.items()}
            try:
                out = rule.native_leaves(specs)
            except ValueError as e:
                raise LayoutError(", ".join(cname(leaf) for leaf in specs), f"{self.name}: {e}") from None
            sources = tuple(cname(leaf) for leaf in specs)
            targets = tuple((self._extra_or_native(module.name, leaf), shape, dt) for leaf, shape, dt in out)

            def fn(arrays: Sequence[np.ndarray], leaves=tuple(specs), outs=tuple(o[0] for o in out)) -> list[np.ndarray]:
                got = rule.to_native(dict(zip(leaves, arrays)))
                return [got[leaf] for leaf in outs]

            move = Move(sources, targets, fn, rule.describe, decision.kind, decision.how, decision.why)
            return [(move, PARAMS)]
        moves = []
        for row in self.leaves[decision.kind]:
            if row.canonical not in module.leaves:
                continue
            shape, _ = module.leaves[row.canonical]
            src = cname(row.canonical)
            if row.native == EXTRA:
                dst, op = f"{EXTRA}/{src}", ops.IDENTITY
            else:
                dst, op = self.native_name(module.name, row.native), row.forward(shape, decision)
            moves.append((single(src, shape, dtypes[src], dst, op, kind=decision.kind, how=decision.how, why=decision.why), row.collection))
        return moves

    def _extra_or_native(self, module: str, leaf: str) -> str:
        return leaf.replace(EXTRA + "/", f"{EXTRA}/{module}.", 1) if leaf.startswith(EXTRA + "/") else self.native_name(module, leaf)

    # native → canonical ---------------------------------------------------------------
    def to_canonical(self, path: str, kind: str, leaves: dict[str, tuple[tuple[int, ...], np.dtype]], names: dict[str, str],
                     extras: dict[str, tuple[tuple[int, ...], np.dtype]], decision: Decision) -> list[Move] | None:
        """Moves reading one native module as canonical, or None if ``kind`` cannot explain it.

        ``leaves``: native leaf → spec; ``names``: native leaf → full native name; ``extras``:
        side-data specs by canonical name.
        """
        module = self.canonical_module(path)
        cname = (lambda leaf: f"{module}.{leaf}" if module and leaf else (module or leaf))
        if kind in self.recurrent:
            rule = self.recurrent[kind]
            try:
                out = rule.canonical_leaves(leaves)
            except (KeyError, ValueError, IndexError):
                return None
            keys = list(leaves) + [f"{EXTRA}/{leaf}" for leaf, _, _ in out if cname(leaf) in extras]
            sources = tuple(names[k] if k in names else f"{EXTRA}/{cname(k.split('/', 1)[1])}" for k in keys)
            targets = tuple((cname(leaf), shape, dt) for leaf, shape, dt in out)

            def fn(arrays: Sequence[np.ndarray], keys=tuple(keys), outs=tuple(o[0] for o in out)) -> list[np.ndarray]:
                got = rule.to_canonical(dict(zip(keys, arrays)))
                return [got[leaf] for leaf in outs]

            return [Move(sources, targets, fn, rule.describe, kind, decision.how, decision.why)]
        rows = {row.native: row for row in self.leaves[kind] if row.native != EXTRA}
        if not set(leaves) <= set(rows) or (rows and next(iter(rows)) not in leaves):
            return None
        moves = []
        for leaf, (shape, dt) in leaves.items():
            row = rows[leaf]
            # Ops only need the rank going backwards (split counts do not matter to a merge),
            # and the native rank equals the canonical one.
            op = row.forward(shape, decision).inverse()
            try:
                op.shape(shape)  # raises when the tensor does not fit this kind: not this kind
            except ValueError:
                return None
            moves.append(single(names[leaf], shape, dt, cname(row.canonical), op, kind=kind, how=decision.how, why=decision.why))
        for row in self.leaves[kind]:
            if row.native == EXTRA and row.marker:
                if cname(row.canonical) not in extras:
                    return None
            elif row.native == EXTRA:
                full = cname(row.canonical)
                if full in extras:
                    moves.append(single(f"{EXTRA}/{full}", extras[full][0], extras[full][1], full, ops.IDENTITY, kind=kind, how=decision.how, why="restored from side data"))
                else:
                    moves.append(_restore_default(full, row, kind, decision))
        canon = Module(module, {_leaf(module, m.targets[0][0]): (m.targets[0][1], m.targets[0][2].name) for m in moves})
        if kind not in ("param", "buffer") and kind not in kinds.candidates(canon):
            return None
        return moves


def _restore_default(name: str, row: Leaf, kind: str, decision: Decision) -> Move:
    # PyTorch BatchNorm counts batches; TF and Flax do not, so without side data it restarts at 0.
    zero = np.zeros((), np.int64)
    return Move((), ((name, (), zero.dtype),), lambda _: [zero], "restored as 0 (no side data)", kind, decision.how, decision.why)


def _leaf(module: str, name: str) -> str:
    return name[len(module) + 1:] if module else name
