"""Planning a conversion from shapes alone: source → canonical → each target, as moves.

The plan decides every module's kind (see ``kinds``), names every output tensor and its op, and
knows every output shape before a byte of tensor data is read; ``--explain`` prints it and the
writers stream it.

>>> from tensorferry.converters.checkpoint import open_source
>>> p = build(open_source("fixtures/checkpoints/cnn"), Options(["tf"]))
>>> {m.sources[0]: m.op for m, _ in p.targets["tf"]}["conv.weight"]
'perm(2,3,1,0)'
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from . import dtypes, kinds, ops
from .checkpoint import Source
from .constants import EXTRA
from .errors import LayoutError
from .kinds import Decision, Module
from .layouts import LAYOUTS, PARAMS
from .layouts.base import Layout
from .layouts import flax as fx
from .layouts import tf
from .maps import transformers as tx_maps
from .moves import Move, single


@dataclass
class Options:
    """What the caller told the planner beyond the files."""

    targets: list[str]
    kind_map: dict[str, str] | None = None  # from a layout map: regex on module name → kind
    structure: dict[str, str] | None = None  # from a model the caller gave: regex → kind
    strict: bool = False
    cast: np.dtype | None = None  # --dtype: applied to canonical tensors, before any layout op
    order: list[str] | None = None  # module regexes in model order (map "order" / structure)
    models: dict[str, object] | None = None  # target framework → the user's model (guided conversion)


@dataclass
class Plan:
    source: Source
    canonical: list[Move]
    decisions: dict[str, Decision]
    targets: dict[str, list[tuple[Move, str]]] = field(default_factory=dict)
    tf_model_name: str = "model"
    # From a transformers architecture map: the h5 root layers (weightless ones included) and
    # the groups each weight is listed in (a head may list the embeddings again).
    tf_layers: list[str] = field(default_factory=list)
    tf_groups: Callable[[str], list[str]] | None = None
    # Guided targets (a model was given): how each layer was paired, and Keras' exact h5 layout.
    pairings: dict[str, list[dict]] = field(default_factory=dict)
    tf_layout: list[tuple[str, list[str]]] | None = None
    keras3: object = None  # a Keras 3 model was given for tf: its model.weights.h5 layout (guided.keras3.H5Layout)
    nnx: object = None  # an NNX module was given for flax: the state its Orbax checkpoint fills (guided.nnx.NNXLayout)
    # PyTorch tensors the source framework's file cannot hold and nothing rebuilds (a transformers map
    # knows them): a PyTorch file written from this source lacks them.
    unrecovered: list[str] = field(default_factory=list)

    @property
    def canonical_specs(self) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        return {name: (shape, dt) for m in self.canonical for name, shape, dt in m.targets}

    def heuristics(self) -> dict[str, Decision]:
        """Modules whose kind was decided by a heuristic, for the report."""
        return {m: d for m, d in self.decisions.items() if d.how == "heuristic"}


def build(source: Source, options: Options) -> Plan:
    """Plan source → canonical → every target in ``options.targets``."""
    arch = None if options.kind_map or options.models else tx_maps.find_map(source.config)
    plan = _build_from_map(source, options, arch) if arch is not None else _build_general(source, options)
    _check_names(plan)
    return plan


def _check_names(plan: Plan) -> None:
    """Each output name belongs to one tensor, and TF/Flax names are clean paths: a writer would drop or fail otherwise.

    ``fc.weight`` (→ Flax ``fc/kernel``) beside a tensor literally named ``fc/kernel`` is such a clash.
    """
    edges = {"canonical": [(m, "") for m in plan.canonical], **plan.targets}
    for fw, moves in edges.items():
        seen: dict[str, str] = {}
        for move, _ in moves:
            for name, _, _ in move.targets:
                if name in seen:
                    raise LayoutError(name, f"both {seen[name]!r} and {', '.join(move.sources)!r} map to {fw} {name!r}")
                seen[name] = ", ".join(move.sources)
        if fw in ("canonical", "pt"):
            continue
        groups = {"/".join(parts[:i]) for parts in (n.split("/") for n in seen) for i in range(1, len(parts))}
        for name, src in seen.items():
            if any(p in ("", ".", "..") for p in name.split("/")):
                raise LayoutError(src, f"gives the {fw} name {name!r}, which is not a clean path")
            if name in groups:
                raise LayoutError(src, f"gives the {fw} name {name!r}, which is also a group of other tensors")


def _build_general(source: Source, options: Options) -> Plan:
    if source.framework == "pt":
        canonical, decisions, alike = _identity(source), {}, {}
    else:
        canonical, decisions, alike = _native_to_canonical(source, options)
    if options.cast is not None:
        canonical = [_cast(m, options.cast) for m in canonical]
    specs = {name: (shape, dt) for m in canonical for name, shape, dt in m.targets}
    modules = _modules(specs)
    if options.order:
        modules = dict(sorted(modules.items(), key=lambda kv: _model_order(kv[1], options.order)))
    plan = Plan(source, canonical, decisions, tf_model_name=tf.model_name(source.config))
    guided = [fw for fw in options.targets if fw in (options.models or {})]
    if guided:  # the model's layers decide the kinds of what they pair with
        _guided(plan, guided, modules, alike, options)
    plain = replace(options, targets=[fw for fw in options.targets if fw not in guided])
    for name, module in modules.items() if plain.targets else ():
        prior = decisions.get(name)
        fits = kinds.candidates(module)
        if prior is None or prior.kind not in fits:
            decisions[name] = _decide(module, fits, plain, lambda k, m=module: _target_signature(m, k, specs, plain))
    for fw in plain.targets:
        plan.targets[fw] = _from_canonical(fw, modules, decisions, specs, plan.tf_model_name)
    return plan


def _guided(plan: Plan, targets: list[str], modules: dict[str, Module], alike: dict[str, list[str]], options: Options) -> None:
    """Targets planned from the user's models: every module paired with a layer by structure (``guided``)."""
    from . import guided
    from .guided.structure import TreeOrder, natural_key

    first: dict[str, int] = {}
    for i, move in enumerate(plan.canonical):
        for name, _, _ in move.targets:
            first.setdefault(name, i)
    # Creation order: a map's or model's `order`, a pickle's state dict; an h5's or msgpack's own
    # order where it is not sorted (Keras and flax list creation order); else names (safetensors sorts).
    readers = {type(r).__name__ for r in plan.source._where.values()}
    ordered = bool(options.order) or readers == {"PickleFile"}
    tree = None if ordered or readers & {"SafetensorsFile", "PickleFile"} else TreeOrder(list(first), ".")
    allowed, order = {}, {}
    for name, module in modules.items():
        fits = kinds.candidates(module)
        given = kinds.lookup(options.kind_map, name) or kinds.lookup(options.structure, name)
        if given:
            allowed[name] = [_decide(module, fits, options, lambda k: k).kind]
        else:
            allowed[name] = [k for k in fits if k in alike.get(name, fits)] or fits
        full = [f"{name}.{leaf}" if name and leaf else (name or leaf) for leaf in module.leaves]
        order[name] = (_model_order(module, options.order) if options.order else (min(first[n] for n in full),) if ordered
                       else tree.key(name) if tree else natural_key(name))
    for fw in targets:
        g = guided.plan_target(fw, options.models[fw], modules, allowed, order, ordered, tree)
        plan.targets[fw], plan.pairings[fw] = g.moves, g.pairings
        plan.tf_layout = g.tf_layout if fw == "tf" else plan.tf_layout
        plan.keras3 = g.keras3 if fw == "tf" else plan.keras3
        plan.nnx = g.nnx if fw == "flax" else plan.nnx
        for name, decision in g.decisions.items():
            if plan.decisions.get(name, Decision("", "")).how != "model":
                plan.decisions[name] = decision


def _cast(move: Move, dtype: np.dtype) -> Move:
    want = tuple(dtype if dtypes.is_float(d) else d for _, _, d in move.targets)
    if want == tuple(d for _, _, d in move.targets):
        return move

    def fn(arrays, inner=move.fn):
        return [a.astype(w, order="C") if a.dtype != w else a for a, w in zip(inner(arrays), want)]

    return replace(move, targets=tuple((n, s, w) for (n, s, _), w in zip(move.targets, want)), fn=fn)


def _identity(source: Source) -> list[Move]:
    return [single(n, s, d, n, ops.IDENTITY, kind="", how="layout") for n, (s, d) in source.infos.items()]


def _modules(specs: dict[str, tuple[tuple[int, ...], np.dtype]]) -> dict[str, Module]:
    """Canonical modules; a module whose leaves fit no kind is split into lone tensors."""
    out: dict[str, Module] = {}
    for name, module in kinds.group({n: (s, d.name) for n, (s, d) in specs.items()}).items():
        if kinds.candidates(module):
            out[name] = module
        else:
            for leaf, spec in module.leaves.items():
                full = f"{name}.{leaf}" if name else leaf
                out[full] = Module(full, {"": spec})
    return out


def _model_order(module: Module, order: list[str]) -> tuple:
    """Sort key putting modules in the model's own order (pre-order, own tensors before children).

    Files like safetensors sort names, but Keras' positional ``load_weights`` needs creation
    order; a map's ``order`` (or a torch model's ``named_modules``) gives it back.
    """
    parts = module.name.split(".")
    lone = set(module.leaves) == {""}
    key = []
    for depth in range(1, len(parts) + 1):
        prefix = ".".join(parts[:depth])
        ranks = [i for i, pattern in enumerate(order) if re.fullmatch(pattern, prefix)]
        last = parts[depth - 1]
        if lone and depth == len(parts) and not ranks:
            key.append((-1, 0))  # a module's own parameter comes before its children
        else:
            key.append((max(ranks) if ranks else len(order), int(last) if last.isdigit() else 0))
    return tuple(key)


def _decide(module: Module, fits: list[str], options: Options, signature: Callable[[str], object], names: str | None = None) -> Decision:
    names = names or ", ".join(f"{module.name}.{leaf}" if leaf else module.name for leaf in module.leaves)
    for how, table in (("map", options.kind_map), ("structure", options.structure)):
        text = kinds.lookup(table, module.name)
        if text:
            kind, params = kinds.parse_kind(text)
            if kind not in fits:
                raise LayoutError(names, f"the {how} says {kind}, but the tensors fit {' or '.join(fits) or 'no kind'}")
            return Decision(kind, how, f"given by the {how}", params or kinds.default_params(kind, module))
    if not fits:
        raise LayoutError(names, "fits no known kind of module")
    if len(fits) == 1:
        return Decision(fits[0], "layout", "", kinds.default_params(fits[0], module))
    if len({repr(signature(k)) for k in fits}) == 1:
        return Decision(fits[0], "layout", f"{' and '.join(fits)} give the same result here", kinds.default_params(fits[0], module))
    guess = kinds.heuristic(module, fits)
    if guess is None:
        raise LayoutError(names, f"cannot tell {' from '.join(fits)}: give a layout map or --kind '{re.escape(module.name)}=KIND'")
    if options.strict:
        raise LayoutError(names, f"only a heuristic decides it ({guess.why} → {guess.kind}); --strict forbids that: give a layout map or --kind")
    return Decision(guess.kind, "heuristic", guess.why, kinds.default_params(guess.kind, module))


def _target_signature(module: Module, kind: str, specs, options: Options) -> object:
    decision = Decision(kind, "probe", "", kinds.default_params(kind, module))
    dts = {n: d for n, (_, d) in specs.items()}
    out = []
    for fw in options.targets:
        for move, coll in LAYOUTS[fw].from_canonical(module, decision, dts):
            out.append((fw, coll, move.op, move.targets))
    return out


def _from_canonical(fw: str, modules: dict[str, Module], decisions: dict[str, Decision], specs, tf_model_name: str) -> list[tuple[Move, str]]:
    layout, dts = LAYOUTS[fw], {n: d for n, (_, d) in specs.items()}
    moves = [mc for name, module in modules.items() for mc in layout.from_canonical(module, decisions[name], dts)]
    if fw == "tf":
        moves = [(_rename(m, lambda n: n if n.startswith(EXTRA + "/") else f"{tf_model_name}/{n}"), c) for m, c in moves]
    elif fw == "flax" and any(c != PARAMS for m, c in moves if not m.targets[0][0].startswith(EXTRA)):
        moves = [(_rename(m, lambda n, c=c: n if n.startswith(EXTRA + "/") else f"{c}/{n}"), c) for m, c in moves]
    return moves


def _rename(move: Move, fn: Callable[[str], str]) -> Move:
    return replace(move, targets=tuple((fn(n), s, d) for n, s, d in move.targets))


# native → canonical ---------------------------------------------------------------------
def _native_modules(source: Source) -> dict[str, tuple[dict[str, tuple], dict[str, str], str]]:
    """Native modules: path → (leaf → spec, leaf → full name, collection)."""
    names = list(source.infos)
    if source.framework == "tf":
        # Subclassed models put their own name first (``tf_model/conv/kernel``); functional ones do not.
        common = len({n.split("/", 1)[0] for n in names}) == 1 and all("/" in n for n in names)
        stripped = {n: n.split("/", 1)[1] if common else n for n in names}
        split = {n: tf.split_native(s) for n, s in stripped.items()}
        colls = {n: PARAMS for n in names}
    else:
        roots = {n.split("/", 1)[0] for n in names}
        wrapped = PARAMS in roots and roots <= set(fx.COLLECTIONS)
        colls = {n: n.split("/", 1)[0] if wrapped else PARAMS for n in names}
        stripped = {n: n.split("/", 1)[1] if wrapped else n for n in names}
        children: dict[str, set[str]] = {}
        for s in stripped.values():
            parts = s.split("/")
            if len(parts) >= 2:
                children.setdefault("/".join(parts[:-2]), set()).add(parts[-2])
        split = {n: fx.split_native(s, children.get("/".join(s.split("/")[:-2]), set())) for n, s in stripped.items()}
    out: dict[str, tuple[dict, dict, str]] = {}
    for n in names:
        path, leaf = split[n]
        key = (path, colls[n] if colls[n] not in (PARAMS, "batch_stats") else "")
        leaves, full, _ = out.setdefault(key, ({}, {}, colls[n]))
        leaves[leaf], full[leaf] = source.infos[n], n
    _merge_layers(out, fx if source.framework == "flax" else tf)
    return out


def _merge_layers(modules: dict, layout) -> None:
    """A stacked recurrent module is written as sibling layers ``l0``, ``l1``, …: one module again.

    Only when the layers are contiguous from ``l0``, at least two, all recurrent, and their parent
    holds nothing of its own (a PyTorch LSTM module has only its weights).
    """
    groups: dict[tuple, dict[int, tuple]] = {}
    for (path, ck), (leaves, full, coll) in modules.items():
        parent, _, last = path.rpartition("/")
        m = layout.LAYER_LEVEL.fullmatch(last)
        if m and leaves and all(layout.is_recurrent_leaf(leaf) for leaf in leaves):
            groups.setdefault((parent, ck), {})[int(m.group(1))] = (path, ck)
    for (parent, ck), layers in groups.items():
        if len(layers) < 2 or set(layers) != set(range(len(layers))) or (parent, ck) in modules:
            continue
        leaves, full, coll = {}, {}, None
        for k in sorted(layers):
            sub_leaves, sub_full, coll = modules.pop(layers[k])
            leaves.update({f"l{k}/{leaf}": spec for leaf, spec in sub_leaves.items()})
            full.update({f"l{k}/{leaf}": name for leaf, name in sub_full.items()})
        modules[(parent, ck)] = (leaves, full, coll)


def _native_to_canonical(source: Source, options: Options) -> tuple[list[Move], dict[str, Decision], dict[str, list[str]]]:
    """Canonical moves, each native module's decision, and the kinds that read it alike (same ops)."""
    layout = LAYOUTS[source.framework]
    moves: list[Move] = []
    decisions: dict[str, Decision] = {}
    alike: dict[str, list[str]] = {}
    for (path, _), (leaves, full, coll) in _native_modules(source).items():
        cmod = layout.canonical_module(path)
        trial = {k: layout.to_canonical(path, k, leaves, full, source.extras, Decision(k, "probe")) for k in _native_kinds(layout)}
        fits = [k for k, m in trial.items() if m is not None]
        if not fits:
            for leaf, spec in leaves.items():
                kind = "buffer" if coll == "buffers" or not dtypes.is_float(spec[1]) else "param"
                cname = ".".join(p for p in (cmod, leaf.replace("/", ".")) if p)
                moves.append(single(full[leaf], spec[0], spec[1], cname, ops.IDENTITY, kind=kind, how="layout", why="copied as is"))
            continue
        probe = Module(cmod, {})

        def signature(k, trial=trial):
            canon = trial[k]
            cspecs = {n: (s, d) for m in canon for n, s, d in m.targets}
            mods = _modules(cspecs)
            tgt = [_target_signature(m, k if k in kinds.candidates(m) else (kinds.candidates(m) or ["param"])[0], cspecs, options) for m in mods.values()]
            return ([(m.op, m.targets) for m in canon], tgt)

        decision = _decide(probe, fits, options, signature, names=", ".join(full.values()))
        # the probe built these moves already; only who decided (and why) changes
        moves.extend(replace(m, how=decision.how, why=m.why or decision.why) for m in trial[decision.kind])
        decisions[cmod] = decision
        same = [(m.op, m.targets) for m in trial[decision.kind]]
        alike[cmod] = [k for k in fits if [(m.op, m.targets) for m in trial[k]] == same]
    return moves, decisions, alike


def _native_kinds(layout: Layout) -> list[str]:
    return [k for k in list(layout.leaves) + list(layout.recurrent) if k not in ("param", "buffer")]


# transformers architectures: every tensor's name and op come from the generated map ------------
def _noted(move: Move, note: str | None) -> Move:
    # An optional tensor's config setting (``present when embedding_size=16``), for --explain.
    return replace(move, why=f"{move.why}; {note}") if note else move


def _computed(arch: "tx_maps.ArchitectureMap", source: Source, made: set[str]) -> tuple[list[Move], list[str]]:
    """Moves rebuilding the PyTorch tensors the file lacks from the config (the map's ``computed`` specs),
    and the names nothing rebuilds."""
    from .maps import computed

    found, lost = arch.missing_pt(source.framework, made, source.config)
    out = []
    for name, spec in found:
        try:
            arr = computed.evaluate(spec, source.config or {})
        except (KeyError, TypeError, ValueError):
            lost.append(name)  # the config lacks a field the formula needs
            continue
        out.append(Move((), ((name, arr.shape, arr.dtype),), lambda _xs, a=arr: [a], computed.describe(spec), "map",
                        "map", f"rebuilt from config.json ({arch.model_type} layout map)"))
    return out, sorted(lost)


def _build_from_map(source: Source, options: Options, arch: "tx_maps.ArchitectureMap") -> Plan:
    how, why = "map", f"transformers {arch.model_type} layout map"

    def moves(pairs: dict, specs: dict) -> list[Move]:
        # A target is (name, op), or a list of them when one tensor feeds several (a tied head).
        return [single(n, specs[n][0], specs[n][1], dst, op, kind="map", how=how, why=why)
                for n, target in pairs.items() if target is not None
                for dst, op in (target if isinstance(target, list) else [target])]

    if source.framework == "pt":
        canonical = _identity(source)
    else:
        # The file may be another architecture of this model_type (a head checkpoint under a base config).
        specs = {n: (s, d.name) for n, (s, d) in source.infos.items()}
        arch, pairs = arch.for_native(source.framework, specs)
        canonical = moves(pairs, source.infos)
        made = {name for m in canonical for name, _, _ in m.targets}
        canonical += [single(f"{EXTRA}/{n}", s, d, n, ops.IDENTITY, kind="map", how=how, why="restored from side data")
                      for n, (s, d) in source.extras.items() if n not in made]
        made |= set(source.extras)
        rebuilt, unrecovered = _computed(arch, source, made)
        canonical += rebuilt
    if options.cast is not None:
        canonical = [_cast(m, options.cast) for m in canonical]
    cspecs = {name: (shape, dt) for m in canonical for name, shape, dt in m.targets}
    plan = Plan(source, canonical, {}, tf_model_name=arch.tf_model_name or tf.model_name(source.config))
    if source.framework != "pt":
        plan.unrecovered = unrecovered
    for fw in options.targets:
        if fw == "pt":
            plan.targets[fw] = [(single(n, s, d, n, ops.IDENTITY, kind="map", how=how, why=why), PARAMS) for n, (s, d) in cspecs.items()]
            continue
        target_map, pairs = arch.for_canonical(fw, {n: (s, d.name) for n, (s, d) in cspecs.items()})
        plan.targets[fw] = [(_noted(m, target_map.note(m.sources[0])), PARAMS) for m in moves(pairs, cspecs)]
        if fw == "tf":  # PyTorch-only tensors (position_ids…) ride in the h5 group Keras never reads
            plan.targets[fw] += [(single(n, *cspecs[n], f"{EXTRA}/{n}", ops.IDENTITY, kind="map", how=how, why="PyTorch only: side data"), PARAMS)
                                 for n, target in pairs.items() if target is None]
            # The h5 file describes the architecture that placed the tensors.
            plan.tf_model_name = target_map.tf_model_name or plan.tf_model_name
            plan.tf_layers, plan.tf_groups = list(target_map.tf_layers), target_map.tf_groups
    return plan
