"""Model-guided conversion: write exactly the file the user's own model loads, paired by structure.

``convert(src, out, to=["tf"], models={"tf": keras_model})`` (CLI ``--model tf=pkg.mod:factory``)
reads the target model's layers (``keras``, ``flax``, ``torch``), pairs every source module with
one of them by layer class, shape and creation order (``pairing``) — never by name — and names
each output tensor after the model's own variable, in the layout its loader reads:
``keras_model.load_weights("tf_model.h5")``, ``flax.serialization.from_bytes(variables, data)``,
``torch_model.load_state_dict(sd, strict=True)``.  The layout rules (gate orders, transposes, side
data) are the general ones: each target layer is written from a virtual canonical module.

>>> import numpy as np
>>> from tensorferry.converters.kinds import group
>>> modules = group({"fc.weight": ((2, 3), "float32"), "fc.bias": ((2,), "float32")})
>>> tree = {"params": {"Dense_0": {"kernel": np.zeros((3, 2)), "bias": np.zeros(2)}}}
>>> g = plan_target("flax", tree, modules, {"fc": ["linear"]}, {"fc": (0,)}, True)
>>> [(m.sources, m.targets[0][0], m.op) for m, _ in g.moves]
[(('fc.weight',), 'params/Dense_0/kernel', 'T'), (('fc.bias',), 'params/Dense_0/bias', 'identity')]
"""
from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from .. import dtypes, kinds
from ..constants import EXTRA
from ..errors import InputError, LayoutError
from ..kinds import Decision, Module
from ..layouts import LAYOUTS, PARAMS
from ..moves import Move
from . import pairing
from .structure import Slot, TreeOrder, Unit, cell_sig, leaf_key, units

__all__ = ["Guided", "load_model", "plan_target"]


@dataclass
class Guided:
    """One target's moves, named after the model's variables, and how each layer was paired."""

    moves: list[tuple[Move, str]]
    pairings: list[dict]
    decisions: dict[str, Decision]
    tf_layout: list[tuple[str, list[str]]] | None = None  # Keras: h5 groups and weight order
    keras3: object = None  # Keras 3: the model.weights.h5 layout (``keras3.H5Layout``)
    nnx: object = None  # Flax NNX: the state the Orbax checkpoint fills (``nnx.NNXLayout``)


def call_factory(factory: Callable[..., object], config: dict | None) -> object:
    """Build a model: ``factory(config)`` when the factory asks for it, else ``factory()``.

    One contract for ``convert --model`` and ``verify --model``: a factory asks for the config by a
    required first parameter or one named ``config``; other parameters keep their defaults.

    >>> def sized(config): return config["a"]
    >>> def with_default(config={"a": 0}): return config["a"]
    >>> def own_options(dtype="float32"): return dtype
    >>> call_factory(lambda: "no config", {"a": 1}), call_factory(sized, {"a": 1}), call_factory(with_default, {"a": 1})
    ('no config', 1, 1)
    >>> call_factory(own_options, {"a": 1})
    'float32'
    """
    try:
        params = [p for p in inspect.signature(factory).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):  # a builtin or C callable without a signature: call it as documented
        params = []
    wants = bool(params) and (params[0].default is inspect.Parameter.empty or params[0].name == "config")
    return factory(config if config is not None else {}) if wants else factory()


def load_model(framework: str, spec: str | object, config: dict | None = None) -> object:
    """The model a ``module:factory`` spec builds (see ``call_factory``), or SPEC itself.

    The current folder is importable, as with ``python -m``; the factory imports its framework.

    >>> load_model("pt", "tensorferry.fixtures.autonamed:torch_cnn").classifier
    Linear(in_features=12, out_features=5, bias=True)
    """
    if not isinstance(spec, str):
        return spec
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise InputError("--model", f"{framework}={spec}: expected FW=MODULE:FACTORY")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise InputError("--model", f"{framework}={spec}: cannot import it ({e})") from None
    return call_factory(factory, config)


def _walker(framework: str, model: object):
    from . import keras3, nnx

    if framework == "tf" and keras3.is_keras3(model):
        return keras3
    if framework == "flax" and nnx.is_nnx(model):
        return nnx
    return importlib.import_module(f"{__name__}.{ {'tf': 'keras', 'flax': 'flax', 'pt': 'torch'}[framework]}")


def plan_target(framework: str, model: object, modules: dict[str, Module], allowed: dict[str, list[str]],
                order: dict[str, tuple], ordered: bool, tree: TreeOrder | None = None) -> Guided:
    """Pair the canonical MODULES with MODEL's layers and plan the writes for FRAMEWORK.

    ``allowed`` gives each module's possible kinds; ``order`` its sort key: creation order when
    ``ordered``, else the source ``tree``'s own order where it can be trusted, else names.
    """
    walker = _walker(framework, model)
    try:
        slots = walker.slots(model)
    except ValueError as e:
        raise InputError(f"--model {framework}", str(e)) from None
    layout = LAYOUTS[framework]
    sig_cache: dict = {}
    wants: dict[int, list] = {}

    def fits(unit: Unit, slot: Slot, cell: int | None):
        if unit.cell is not None:
            kind = unit.kinds[0]
            if cell is None or kind not in slot.kinds:
                return None
            # a one-direction module says nothing of direction (a flax cell, a Keras LSTM may run either way)
            have = cell_sig(kind, unit.leaves) + (unit.cell[1] if unit.rnn.directions > 1 else None,)
            return (kind, ()) if all(w is None or h is None or w == h for w, h in zip(slot.cell_sigs[cell], have)) else None
        if cell is not None:
            return None
        if id(slot) not in wants:
            wants[id(slot)] = sorted((v.leaf, v.shape) for v in slot.vars if v.alias_of is None)
        want = wants[id(slot)]
        for kind in unit.kinds:
            if kind not in slot.kinds:
                continue
            if kind in ("param", "buffer") and dtypes.is_float(unit.leaves[""][1]) != dtypes.is_float(slot.vars[0].dtype):
                continue
            params = slot.params if kind == "depthwise" and slot.params else kinds.default_params(kind, Module(unit.module, unit.leaves))
            key = (id(unit), kind, params)
            if key not in sig_cache:
                sig_cache[key] = sorted((leaf, shape) for leaf, shape, _ in _native(layout, "m", unit.leaves, Decision(kind, "model", "", params)))
            if sig_cache[key] == want:
                return kind, params
        return None

    found = _loose(units(modules, allowed, order, ordered, tree), slots, layout)
    if framework == "pt":  # PyTorch is the canonical layout: a layer can take loose tensors as they are
        slots = _loose_slots(slots, found)
    pairs = pairing.pair(found, slots, fits)
    guided = _moves(framework, layout, slots, pairs, walker, model)
    if hasattr(walker, "record"):
        setattr(guided, "keras3" if framework == "tf" else "nnx", walker.record(model))
    return guided


def _loose(found: list[Unit], slots: list[Slot], layout) -> list[Unit]:
    """Modules of a class the model does not have (a custom layer's own ``add_weight``s, a weight-normed
    conv) are offered tensor by tensor, each through the layout's op for its kind."""
    classes = set().union(*(s.kinds for s in slots)) if slots else set()
    out = []
    for unit in found:
        if unit.cell is not None or set(unit.kinds) & classes or "param" not in classes or len(unit.kinds) != 1:
            out.append(unit)
            continue
        decision = Decision(unit.kinds[0], "model", "", kinds.default_params(unit.kinds[0], Module(unit.module, unit.leaves)))
        native = _native(layout, "m", unit.leaves, decision)
        if any(len(move.sources) != 1 for _, _, move in native):  # a tensor made of several: no loose form
            out.append(unit)
            continue
        for i, (_, shape, move) in enumerate(native):
            source, dtype = unit.names[move.sources[0].removeprefix("m.")], move.targets[0][2].name
            out.append(Unit(source, ["param" if dtypes.is_float(dtype) else "buffer"], {"": (shape, dtype)}, {"": source},
                            unit.order + ((i,),), unit.ordered, tree=unit.tree, pre=move))
    return out


def _loose_slots(slots: list[Slot], found: list[Unit]) -> list[Slot]:
    """Torch layers of a class no source unit has, offered variable by variable to loose source tensors."""
    offered = {k for u in found for k in u.kinds}
    if "param" not in offered and "buffer" not in offered:
        return slots
    out = []
    for slot in slots:
        if slot.kinds & offered or slot.cells:
            out.append(slot)
            continue
        for i, var in enumerate(v for v in slot.vars if v.alias_of is None):
            out.append(Slot(var.name, f"{slot.cls} variable", frozenset({"param", "buffer"}), [replace(var, leaf="")],
                            slot.order + ((i,),), slot.ordered, var.name))
    return out


def _native(layout, name: str, leaves: dict, decision: Decision) -> list[tuple[str, tuple, Move]]:
    """(leaf in the layer, shape, move) of every non-side-data tensor the layout writes for a module."""
    module = Module(name, leaves)
    dts = {(f"{name}.{leaf}" if leaf else name): np.dtype(spec[1]) for leaf, spec in leaves.items()}
    base = layout.native_name(name, "")
    out = []
    for move, _ in layout.from_canonical(module, decision, dts):
        for target, shape, _ in move.targets:
            if not target.startswith(EXTRA + "/"):
                rel = "" if target == base else target[len(base) + len(layout.sep):]
                out.append((leaf_key(rel), tuple(shape), move))
    return out


def _moves(framework: str, layout, slots: list[Slot], pairs: list[pairing.Pair], walker, model) -> Guided:
    by_slot: dict[int, list[pairing.Pair]] = {}
    for p in pairs:
        by_slot.setdefault(id(p.slot), []).append(p)
    moves: list[tuple[Move, str]] = []
    rows, decisions = [], {}
    for slot in slots:
        group = sorted(by_slot.get(id(slot), []), key=lambda p: p.cell or 0)
        for p in group:
            rows.append({"source": p.unit.label, "tensors": list(p.unit.names.values()), "class": slot.cls, "kind": p.kind,
                         "target": slot.label + (f" (cell {p.cell})" if p.cell is not None and len(slot.cells) > 1 else ""),
                         "evidence": p.evidence})
            if p.unit.pre is None:
                decisions[p.unit.module] = Decision(p.kind, "model", f"{slot.cls} {slot.label}: {p.evidence}", p.params)
        if group and group[0].unit.pre is not None:  # one tensor of a module, through its kind's op
            var, move = slot.vars[0], group[0].unit.pre
            moves.append((replace(move, sources=(group[0].unit.module,), targets=((var.name, *move.targets[0][1:]),), how="model",
                                  why=f"{slot.cls} {slot.label}: {group[0].evidence}"), var.collection if framework != "pt" else PARAMS))
        elif group:
            moves += _slot_moves(framework, layout, slot, group)
    aliases = walker.aliases(model) if hasattr(walker, "aliases") else {}
    moves += [(Move(m.sources, ((alias, shape, dt),), lambda xs, fn=m.fn, i=i: [list(fn(xs))[i]], m.op, m.kind, "model",
                    f"tied to {first}"), coll)
              for alias, first in aliases.items() for m, coll in list(moves)
              for i, (name, shape, dt) in enumerate(m.targets) if name == first]
    found = {n for m, _ in moves for n, _, _ in m.targets}
    missing = [v.name for s in slots for v in s.vars if v.name not in found]
    if missing:
        raise LayoutError(", ".join(missing[:6]), "the model's variables get no tensor from the source")
    return Guided(moves, rows, decisions, walker.layout(model) if hasattr(walker, "layout") else None)


def _slot_moves(framework: str, layout, slot: Slot, group: list[pairing.Pair]) -> list[tuple[Move, str]]:
    """The layout's moves for one layer, written from a virtual canonical module named as the general
    rules would read the layer back (so side data keeps its meaning), renamed to the layer's variables."""
    leaves, names = {}, {}
    for p in group:  # a recurrent layer gathers its cells: cell (k, d) of the slot is ``…_l{k}{d}``
        k, d = slot.cells[p.cell] if p.cell is not None else (None, None)
        for leaf, spec in p.unit.leaves.items():
            vleaf = leaf if k is None else leaf.removesuffix("_l0") + f"_l{k}{d}"
            leaves[vleaf], names[vleaf] = spec, p.unit.names[leaf]
    vmod = slot.module or "m"
    decision = Decision(group[0].kind, "model", f"{slot.cls} {slot.label}: {group[0].evidence}", group[0].params)
    variables = {v.leaf: v for v in slot.vars if v.alias_of is None}
    cname = {(f"{vmod}.{leaf}" if leaf else vmod): leaf for leaf in leaves}
    dts = {c: np.dtype(leaves[leaf][1]) for c, leaf in cname.items()}
    base = layout.native_name(vmod, "")
    out = []
    for move, coll in layout.from_canonical(Module(vmod, leaves), decision, dts):
        targets, colls = [], []
        for target, shape, dt in move.targets:
            if target.startswith(EXTRA + "/"):
                targets.append((target, shape, dt))
                continue
            leaf = leaf_key("" if target == base else target[len(base) + len(layout.sep):])
            if leaf not in variables:
                raise LayoutError(slot.label, f"{slot.cls} has no variable {leaf!r} for {', '.join(names.values())}")
            targets.append((variables[leaf].name, shape, dt))
            colls.append(variables[leaf].collection if framework != "pt" else PARAMS)
        sources = tuple(names[cname[s]] if s in cname else s for s in move.sources)
        out.append((replace(move, sources=sources, targets=tuple(targets), how="model", why=decision.why), colls[0] if colls else coll))
    return out
