"""Pairing source units with target slots by structure: class, shape, then order; never by name.

Units and slots that fit each other (same kind of layer, same shapes after the layout's op) form
connected groups.  A group of one unit and one slot is settled by class and shape alone; a group
where every unit fits every slot (layers of one class and shape: the attention projections of a
block) is paired in creation order, which must be known on both sides; any other group must have
exactly one consistent assignment.  Everything else is a ``LayoutError`` naming both sides.

>>> from tensorferry.converters.guided.structure import Slot, Unit, Var
>>> u = [Unit(n, ["linear"], {"weight": ((4, 4), "float32")}, {"weight": n + ".weight"}, (i,), True) for i, n in enumerate("qk")]
>>> s = [Slot(n, "Dense", frozenset({"linear"}), [Var(n + "/kernel", "kernel", (4, 4), "float32")], (i,), True) for i, n in enumerate(["dense", "dense_1"])]
>>> [(p.unit.module, p.slot.label, p.evidence) for p in pair(u, s, lambda unit, slot, cell: ("linear", ()))]
[('q', 'dense', '1st of 2 Dense of these shapes, in creation order'), ('k', 'dense_1', '2nd of 2 Dense of these shapes, in creation order')]
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..errors import LayoutError
from .structure import Slot, Unit, knows_order

# (unit, slot, cell index or None) → (kind, decision params) when the unit fits there, else None
Fits = Callable[[Unit, Slot, "int | None"], "tuple[str, tuple] | None"]
MAX_SEARCH = 14  # a group past this size without a simple shape is refused rather than searched


@dataclass
class Pair:
    unit: Unit
    slot: Slot
    cell: int | None  # which cell of a recurrent slot
    kind: str
    params: tuple
    evidence: str


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def _target(slot: Slot, cell: int | None) -> str:
    return f"{slot.label} ({slot.cls}{f', cell {cell}' if cell is not None and len(slot.cells) > 1 else ''})"


def _shapes(unit: Unit) -> str:
    return ", ".join(f"{leaf} {tuple(spec[0])}" for leaf, spec in unit.leaves.items())


def _vars(slot: Slot) -> str:
    return ", ".join(f"{v.leaf or v.name} {v.shape}" for v in slot.vars if v.alias_of is None)


def pair(units: list[Unit], slots: list[Slot], fits: Fits) -> list[Pair]:
    """Every unit with exactly one slot (cell), or a ``LayoutError`` naming both sides."""
    targets = [(s, c) for s in slots for c in (range(len(s.cells)) if s.cells else [None])]
    by_kind: dict[str, list[int]] = {}
    for j, (s, _) in enumerate(targets):
        for kind in s.kinds if not s.note else ():
            by_kind.setdefault(kind, []).append(j)
    fit: dict[tuple[int, int], tuple] = {}
    for i, u in enumerate(units):
        for j in sorted({j for kind in u.kinds for j in by_kind.get(kind, ())}):
            got = fits(u, *targets[j])
            if got is not None:
                fit[i, j] = got
    by_unit = {i: [j for j in range(len(targets)) if (i, j) in fit] for i in range(len(units))}
    by_target = {j: [i for i in range(len(units)) if (i, j) in fit] for j in range(len(targets))}
    for i, js in by_unit.items():
        if not js:
            u = units[i]
            near = [_target(s, c) + ": " + (s.note or _vars(s)) for s, c in targets if set(u.kinds) & s.kinds][:4]
            raise LayoutError(u.label, f"no layer of the target model fits this {'/'.join(u.kinds)} ({_shapes(u)})"
                              + (f"; layers of that kind: {'; '.join(near)}" if near else "; the model has no layer of that kind")
                              + " (leave it out with --drop if the model does not use it)")
    for j, is_ in by_target.items():
        if not is_:
            s, c = targets[j]
            near = [f"{u.label}: {_shapes(u)}" for u in units if set(u.kinds) & s.kinds][:4]
            raise LayoutError(_target(s, c), f"no source tensor fits this layer's variables ({s.note or _vars(s)}); "
                                             + (f"source layers of that kind: {'; '.join(near)}" if near
                                                else f"the source has no {'/'.join(sorted(s.kinds))}"))
    pairs: list[Pair] = []
    for group_u, group_t in _components(by_unit, by_target):
        pairs += _settle([units[i] for i in group_u], [targets[j] for j in group_t],
                         {(a, b): fit[i, j] for a, i in enumerate(group_u) for b, j in enumerate(group_t) if (i, j) in fit})
    return pairs


def _components(by_unit: dict, by_target: dict) -> list[tuple[list[int], list[int]]]:
    seen_u, out = set(), []
    for start in by_unit:
        if start in seen_u:
            continue
        us, ts, todo = {start}, set(), [("u", start)]
        while todo:
            side, x = todo.pop()
            for y in (by_unit[x] if side == "u" else by_target[x]):
                bucket = ts if side == "u" else us
                if y not in bucket:
                    bucket.add(y)
                    todo.append(("t" if side == "u" else "u", y))
        seen_u |= us
        out.append((sorted(us), sorted(ts)))
    return out


def _settle(us: list[Unit], ts: list[tuple[Slot, int | None]], fit: dict) -> list[Pair]:
    names_u = ", ".join(u.label for u in us)
    names_t = ", ".join(_target(s, c) for s, c in ts)
    if len(us) != len(ts):
        raise LayoutError(names_u, f"{len(us)} source layer(s) fit {len(ts)} target layer(s) of the same class and shapes "
                                   f"({names_t}): they must pair one to one (--drop leaves source tensors out)")
    cls = ts[0][0].cls
    if len(us) == 1:
        kind, params = fit[0, 0]
        return [Pair(us[0], ts[0][0], ts[0][1], kind, params, f"the only {cls} of these shapes")]
    if len(fit) == len(us) * len(ts):  # all alike: creation order decides, and must be known
        su = sorted(range(len(us)), key=lambda a: us[a].order)
        st = sorted(range(len(ts)), key=lambda b: (ts[b][0].order, ts[b][1] or 0))
        _order_must_be_known([us[a] for a in su], [ts[b] for b in st], names_u, names_t)
        return [Pair(us[a], ts[b][0], ts[b][1], *fit[a, b], f"{_ordinal(n + 1)} of {len(us)} {cls} of these shapes, in creation order")
                for n, (a, b) in enumerate(zip(su, st))]
    if len(us) > MAX_SEARCH:
        raise LayoutError(names_u, f"{len(us)} source layers fit {names_t} in too many ways to search: "
                                   "give the kinds (--kind, or --model pt=… for a PyTorch source)")
    found = _matchings(len(us), fit, limit=2)
    if len(found) != 1:
        raise LayoutError(names_u, f"pairs with {names_t} in more than one way by class and shape: nothing tells which is which "
                                   "(give the kinds with --kind, or --model pt=… for a PyTorch source)")
    return [Pair(us[a], ts[b][0], ts[b][1], *fit[a, b], f"the only consistent assignment of these {len(us)} layers by class and shape")
            for a, b in enumerate(found[0])]


def _order_must_be_known(us: list[Unit], ts: list[tuple[Slot, int | None]], names_u: str, names_t: str) -> None:
    for a, b in zip(us, us[1:]):
        if a.module != b.module and not knows_order(a, b, "."):
            raise LayoutError(f"{a.label}, {b.label}", f"both fit {names_t} (same class and shapes) and this source does not keep "
                                                       "their creation order (safetensors and Orbax sort names; attribute names say nothing): give "
                                                       "it with the source's own model (--model pt=… for PyTorch, --model tf=… "
                                                       "for Keras 3 weights, --model flax=… for an Orbax checkpoint), "
                                                       "a layout map's `order`, or a .pt/.bin file")
    for (a, _), (b, _) in zip(ts, ts[1:]):
        if a is not b and not knows_order(a, b, "/"):
            raise LayoutError(f"{a.label}, {b.label}", f"both take {names_u} (same class and shapes) and the model's tree does not "
                                                       "say which was created first (only auto-names like Dense_0, Dense_1 do)")


def _matchings(n: int, fit: dict, limit: int) -> list[tuple[int, ...]]:
    """Perfect matchings of units 0..n-1 to targets 0..n-1, up to ``limit`` of them."""
    out: list[tuple[int, ...]] = []

    def walk(a: int, used: tuple[int, ...]) -> None:
        if len(out) >= limit:
            return
        if a == n:
            out.append(used)
            return
        for b in range(n):
            if b not in used and (a, b) in fit:
                walk(a + 1, used + (b,))

    walk(0, ())
    return out
