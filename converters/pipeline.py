"""The converter pipeline: source → plan → canonical tensors → every target file, streamed tensor by tensor.

>>> import tempfile
>>> result = convert("fixtures/checkpoints/cnn", tempfile.mkdtemp(), to=["tf", "flax"])
>>> sorted(result.outputs), result.outputs["tf"].files
(['flax', 'tf'], ['tf_model.h5'])
"""
from __future__ import annotations

import json
import re
import shutil
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from typing import Any
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import dtypes
from .checkpoint import Source, open_source
from .constants import CONFIG, EXTRA, FILES, FRAMEWORKS, MAX_SHARD_SIZE, TIES_KEY, parse_frameworks
from .errors import InputError
from .formats import atomic_outputs, h5_file, msgpack_file, safetensors_file
from .formats.digest import FileDigest
from .layouts import MODULES, PARAMS
from .maps import kinds as kind_maps
from .moves import Move
from .ops import contiguous
from .plan import Options, Plan, build
from .selection import drop_names
from .tensors import Cancelled, Tensors, return_freed_memory
from .written import Output, Variant as _Variant
from . import model_formats


@dataclass
class ConvertResult:
    """What a conversion wrote and how each tensor's kind was decided."""

    source: str
    source_framework: str
    out_dir: str
    outputs: dict[str, Output] = field(default_factory=dict)
    heuristics: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    plan: Plan | None = None
    checkpoint: dict | None = None  # a training checkpoint: {"key", "ignored", "stripped"}
    dropped: list[str] = field(default_factory=list)  # source tensors --drop left out
    warnings: list[str] = field(default_factory=list)
    keras: dict | None = None  # a .keras archive source: what its config.json and metadata.json say
    # PyTorch tensors the TF/Flax source cannot give and nothing rebuilds: left out of model.safetensors.
    unrecovered: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "source": self.source, "source_framework": self.source_framework, "out_dir": self.out_dir,
            "outputs": {fw: {"files": o.files, "bytes": o.bytes, "tensors": o.tensors,
                             "sha256": {f: d.sha256 for f, d in o.digests.items()}} for fw, o in self.outputs.items()},
            "heuristics": self.heuristics, "seconds": round(self.seconds, 3),
            "checkpoint": self.checkpoint, "dropped": self.dropped, "warnings": self.warnings,
            **({"keras": self.keras} if self.keras else {}),
            "unrecovered": self.unrecovered,
        }


def parse_size(text: str | int) -> int:
    """``"5GB"`` → 5·10⁹ bytes (``GiB`` is 2³⁰), as transformers reads ``max_shard_size``.

    >>> parse_size("500MB"), parse_size("1GiB"), parse_size(1000)
    (500000000, 1073741824, 1000)
    """
    if isinstance(text, int) and not isinstance(text, bool) and text > 0:
        return text
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?i?B)?\s*", str(text), re.IGNORECASE)
    if not m:
        raise InputError("--max-shard-size", f"cannot read size {text!r} (e.g. 5GB, 500MB, 2GiB)")
    unit = (m.group(2) or "B").upper()
    power = " KMGT".index(unit[0]) if unit[0] in "KMGT" else 0
    size = float(m.group(1)) * ((1024 if "I" in unit else 1000) ** power)
    if not 0 < size < 2**62:
        raise InputError("--max-shard-size", f"size {text!r} is not between 1 byte and 4 EiB")
    return int(size)


def convert(
    src: str | Path | Source,
    out: str | Path,
    to: Sequence[str] | str = FRAMEWORKS,
    *,
    source_framework: str | None = None,
    strict: bool = False,
    dtype: str | None = None,
    max_shard_size: str | int = MAX_SHARD_SIZE,
    kinds: dict[str, str] | None = None,
    structure: object | None = None,
    layout_map: str | Path | dict | None = None,
    extras: bool = True,
    progress: Callable[[int], None] | None = None,
    key: str | None = None,
    drop: Sequence[str] = (),
    models: dict[str, object] | None = None,
    digests: bool = False,
) -> ConvertResult:
    """Convert SRC (folder or file) into OUT, one variant per framework in ``to``, all written at once.

    ``kinds`` ({regex: kind}) and ``structure`` (a ``torch.nn.Module`` or such a dict) tell the
    planner what tensors are; ``layout_map`` overrides the map found by ``model_type``.  ``key``
    chooses the state dict inside a training checkpoint; ``drop`` (regexes) leaves source tensors out.
    ``models`` ({framework: model or "module:factory"}) writes each such target for that model's
    own loader, pairing its layers with the source by structure (see ``guided``).  ``digests``
    computes each weights file's sha256 while writing it (``Output.digests``; publishing needs them).
    """
    started = time.perf_counter()
    to = parse_frameworks(to)
    cast = dtypes.cast_dtype(dtype) if dtype else None
    shard_size = parse_size(max_shard_size)
    source = src if isinstance(src, Source) else open_source(src, source_framework, key=key)
    dropped, warnings = select(source, drop)
    plan = plan_for(source, to, strict=strict, kinds=kinds, structure=structure, layout_map=layout_map, cast=cast, models=models)
    out = Path(out)
    result = ConvertResult(str(src if not isinstance(src, Source) else source.files[0]), source.framework, str(out), plan=plan,
                           heuristics={m: f"{d.kind} ({d.why})" for m, d in plan.heuristics().items()},
                           checkpoint=source.found.to_json() if source.found else None, dropped=dropped, warnings=warnings,
                           keras=model_formats.keras_report(source.keras),
                           unrecovered=list(plan.unrecovered) if "pt" in to else [])
    producer = Producer(source, plan.canonical)
    variants = [_variant(fw, plan, out, shard_size, extras, digests) for fw in to]
    with atomic_outputs() as files:
        files.prepare(out, [FILES[fw] for fw in to])  # dead runs' partial files go; stale variants go at commit
        for variant, output in zip(variants, _write_all(variants, producer, files, progress)):
            result.outputs[variant.framework] = output
        if source.config_path is not None:
            shutil.copyfile(source.config_path, files.path(out / CONFIG))
    result.seconds = time.perf_counter() - started
    return result


def select(source: Source, drop: Sequence[str] = ()) -> tuple[list[str], list[str]]:
    """Leave out the source tensors any ``drop`` regex finds; (dropped names, warnings).

    A pattern that finds nothing is a warning, not an error (the same command serves several files).

    >>> src = open_source("fixtures/checkpoints/cnn")
    >>> select(src, [r"^head\\.", "nothing"])
    (['head.bias', 'head.weight'], ["--drop 'nothing' matched no tensor"])
    >>> "head.weight" in src.infos
    False
    """
    if not drop:
        return [], []
    dropped, unused = drop_names(list(source.infos), list(drop))
    if len(dropped) == len(source.infos):
        raise InputError("--drop", f"{', '.join(drop)} would leave out every tensor of {source.files[0]}")
    for name in dropped:
        del source.infos[name]
    source.dropped += dropped
    gone = set(dropped)
    source.ties = {a: t for a, t in source.ties.items() if a not in gone and t not in gone}
    return dropped, [f"--drop {p!r} matched no tensor" for p in unused]


def plan_for(source: Source, to: Sequence[str] | str, *, strict: bool = False, kinds: dict[str, str] | None = None,
             structure: object | None = None, layout_map: str | Path | dict | None = None, cast: np.dtype | None = None,
             models: dict[str, object] | None = None) -> Plan:
    """Plan without writing: what ``--explain`` prints.

    A PyTorch model in ``models`` for a PyTorch source that is not a target serves as ``structure``.

    >>> plan = plan_for(open_source("fixtures/checkpoints/cnn"), "flax")
    >>> [m.targets[0][0] for m, _ in plan.targets["flax"]][:2]
    ['params/conv/kernel', 'params/conv/bias']
    """
    from .kinds import check_table, kinds_from_torch

    to = parse_frameworks(to)
    models = {fw: m for fw, m in parse_models(models).items()}
    keras_order = None
    if models:
        from .guided import load_model

        models = {fw: load_model(fw, m, source.config) for fw, m in models.items()}
        if "pt" in models and "pt" not in to and source.framework == "pt" and structure is None:
            structure = models.pop("pt")  # the PyTorch twin of a PyTorch source: its kinds and creation order
            unknown = sorted(set(source.infos) - set(structure.state_dict()))
            if unknown:
                raise InputError("--model pt", f"the PyTorch model has no {', '.join(unknown[:5])}: it is not this checkpoint's model")
        if "tf" in models and "tf" not in to and source.framework == "tf":
            keras_order = model_formats.keras3_structure(source, models.pop("tf"))
        if "flax" in models and "flax" not in to and source.framework == "flax":
            from .guided import nnx

            model = models.pop("flax")
            if not nnx.is_nnx(model):
                raise InputError("--model flax", "for a Flax source that is not a target, the model must be an NNX module (its structure)")
            keras_order, nnx_kinds = nnx.structure(model)
            kinds = {**nnx_kinds, **(kinds or {})}
        unused = sorted(set(models) - set(to))
        if unused:
            raise InputError("--model", f"a model for {', '.join(unused)}, which is not a target (--to {','.join(to)})")
    found = kind_maps.load_full(layout_map) if layout_map is not None else kind_maps.find_full(source.config)
    kind_map, order = (found or {}).get("kinds"), (found or {}).get("order")
    given = dict(check_table(kinds, "kinds") if kinds else {})
    if isinstance(structure, dict):
        check_table(structure, "structure")
    if keras_order:
        order = keras_order
    if structure is not None:
        from_model = structure if isinstance(structure, dict) else kinds_from_torch(structure, all_modules=True)
        order = [k for k in from_model if not isinstance(structure, dict)] or order
        given.update({k: v for k, v in from_model.items() if v})
    return build(source, Options(list(to), kind_map=kind_map, structure=given or None, strict=strict,
                                 cast=cast, order=order, models=models or None))


def parse_models(models: dict[str, object] | Sequence[str] | None) -> dict[str, object]:
    """``{"tf": model}`` or CLI ``["tf=pkg.mod:factory"]`` → {framework: model or spec}.

    >>> parse_models(["tensorflow=pkg.twins:keras_model"])
    {'tf': 'pkg.twins:keras_model'}
    """
    if not models:
        return {}
    items = models.items() if isinstance(models, dict) else [tuple(m.partition("=")[::2]) for m in models]
    out = {}
    for fw, model in items:
        if not fw or model in ("", None):
            raise InputError("--model", f"expected FW=MODULE:FACTORY, got {fw!r}")
        out[parse_frameworks([fw], "--model")[0]] = model
    return out


class Producer:
    """Computes canonical and target tensors on demand; safe to share between the writer threads.

    A move with several outputs (a recurrent layer) computes them all at once: the others are kept
    for their own request, within ``keep`` bytes (past that they are recomputed when asked; the
    writer sets it to the largest tensor once it knows the sizes).
    """

    def __init__(self, source: Source, canonical: list[Move]) -> None:
        self.source = source
        self.canonical = {name: m for m in canonical for name, _, _ in m.targets}
        self._cache: dict[str, np.ndarray] = {}
        self.keep = 0
        self._lock = threading.Lock()

    def canonical_tensor(self, name: str) -> np.ndarray:
        return self.run(self.canonical[name], name, self._load_source)

    def _load_source(self, name: str) -> np.ndarray | None:
        if name.startswith(EXTRA + "/") and name[len(EXTRA) + 1:] not in self.source.extras:
            return None
        return self.source.load(name)

    def run(self, move: Move, want: str, load: Callable[[str], np.ndarray | None]) -> np.ndarray:
        return self.run_all(move, load, [want])[want]

    def run_all(self, move: Move, load: Callable[[str], np.ndarray | None], wanted: Sequence[str]) -> dict[str, np.ndarray]:
        """MOVE's outputs named in WANTED (from the cache where it holds them)."""
        keys = {name: f"{id(move)}:{name}" for name in wanted}
        with self._lock:
            if all(k in self._cache for k in keys.values()):
                return {name: self._cache.pop(k) for name, k in keys.items()}
        arrays = dict(zip((t[0] for t in move.targets), move.run([load(s) for s in move.sources])))
        with self._lock:
            held = sum(a.nbytes for a in self._cache.values())
            for name, arr in arrays.items():
                if name not in keys and len(arrays) > 1 and held + arr.nbytes <= self.keep:
                    self._cache[f"{id(move)}:{name}"] = arr
                    held += arr.nbytes
        return {name: arrays[name] for name in wanted}


def _variant(fw: str, plan: Plan, out: Path, max_shard: int, extras: bool, digests: bool) -> _Variant:
    if fw == "tf" and plan.keras3 is not None:  # a given model's own format: its module plans the files
        return model_formats.keras3_variant(plan, out, extras, digests, max_shard)
    if fw == "flax" and plan.nnx is not None:
        return model_formats.nnx_variant(plan, out)
    module, names_of = MODULES[fw], FILES[fw]
    moves = plan.targets[fw]
    by_name = {name: m for m, _ in moves for name, _, _ in m.targets}
    collection = {name: c for m, c in moves for name, _, _ in m.targets}
    main = [(n, s, d) for m, _ in moves for n, s, d in m.targets if not n.startswith(EXTRA + "/")]
    side = [n for m, _ in moves for n, _, _ in m.targets if n.startswith(EXTRA + "/")] if extras else []
    if module.CAN_HOLD is not None:
        for name, _, dt in main:
            if dt.name not in module.CAN_HOLD:
                raise InputError(names_of.single, f"{module.WHY_NOT}: {name} is {dt.name}; pass --dtype float32 (exact for {dt.name}) or another type it holds")
    if fw == "tf":
        main = _keras_order(main, collection, plan)
    shards = shard(main, lambda spec: _nbytes(spec[1], spec[2]), max_shard)
    names = [names_of.single] if len(shards) == 1 else [names_of.shard(i + 1, len(shards)) for i in range(len(shards))]
    specs = {n: (s, d) for n, s, d in main}
    if fw == "pt":
        orders = [[n for n, _, _ in shard] for shard in shards]
    elif fw == "tf":
        orders = [h5_file.order(_keras_layers(shard, collection, plan), specs, len(shards) > 1) for shard in shards]
    else:
        orders = [msgpack_file.order(shard) for shard in shards]
    ties = plan.source.ties

    def write(produce: Callable[[str], np.ndarray], files) -> Output:
        side_arrays = {n[len(EXTRA) + 1:]: np.asarray(produce(n)) for n in side}
        if ties and extras and fw != "pt":  # TF and Flax tie by structure; keep the names for the way back
            side_arrays[TIES_KEY] = np.frombuffer(json.dumps(ties).encode(), np.uint8)
        written: dict[str, FileDigest] = {}
        for i, (fname, shard) in enumerate(zip(names, shards)):
            path = files.path(out / fname)
            last = i == len(shards) - 1
            if fw == "pt":
                meta = {"format": "pt", **({TIES_KEY: json.dumps(ties)} if ties else {})}
                written[fname] = safetensors_file.write(path, shard, produce, meta, digest=digests)
            elif fw == "tf":
                written[fname] = h5_file.write(path, _keras_layers(shard, collection, plan), specs, produce,
                                               extras=side_arrays if last else None, sharded=len(shards) > 1, digest=digests)
            else:
                # side-data names are canonical PyTorch names: one flat level under __tensorferry__
                written[fname] = msgpack_file.write(path, shard, produce, extras={EXTRA: side_arrays} if last and side_arrays else None,
                                                    digest=digests)
        total = sum(d.size for d in written.values())
        listed = list(names)
        if len(shards) > 1:
            suffix = ":0" if fw == "tf" else ""
            index = {"metadata": {"total_size": sum(_nbytes(s, d) for _, s, d in main)},
                     "weight_map": {n + suffix: f for f, shard in zip(names, shards) for n, _, _ in shard}}
            files.path(out / names_of.index).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
            listed.append(names_of.index)
        return Output(fw, listed, total, len(main), written if digests else {})

    return _Variant(fw, by_name, side + [n for o in orders for n in o], write)


def _write_all(variants: list[_Variant], producer: Producer, files, progress: Callable[[int], None] | None) -> list[Output]:
    """Write every variant at once, one thread each, sharing the tensors they have in common (``tensors``)."""
    keys, made_by, sizes = _keys(variants)
    lock = threading.Lock()
    reported: set[Hashable] = set()

    def compute(key: Hashable) -> np.ndarray | dict[str, np.ndarray]:
        move, names = made_by[key]
        got = {n: contiguous(np.asarray(a)) for n, a in producer.run_all(move, producer.canonical_tensor, names).items()}
        if progress:
            with lock:  # a tensor computed again (not kept within the memory budget) is no new progress
                if key not in reported:
                    reported.add(key)
                    progress(sum(a.nbytes for a in got.values()))
        return got if key[0] == "move" else got[names[0]]

    def produce(fw: str, name: str) -> np.ndarray:
        got = shared.get(fw, keys[(fw, name)])
        return got[name] if isinstance(got, dict) else got

    largest = max(sizes.values(), default=0)
    return_freed_memory()
    producer.keep = largest
    shared = Tensors(compute, {v.framework: [keys[(v.framework, n)] for n in v.order] for v in variants}, sizes,
                     budget=2 * largest)  # alive at once: two writers' tensors, or one and the next
    outputs: list[Output | None] = [None] * len(variants)
    errors: list[BaseException] = []

    def run(i: int, v: _Variant) -> None:
        try:
            outputs[i] = v.write(lambda name: produce(v.framework, name), files)
        except BaseException as e:  # noqa: BLE001 - the first error is raised once every writer stopped
            errors.append(e)
            shared.cancel()

    threads = [threading.Thread(target=run, args=(i, v), name=f"tensorferry-{v.framework}", daemon=True)
               for i, v in enumerate(variants)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    except BaseException:  # Ctrl-C: stop the writers before their files are discarded
        shared.cancel()
        raise
    finally:
        shared.close()
        for t in threads:
            while t.is_alive():  # each stops at its next tensor; a write in progress finishes first
                t.join(0.5)
    real = [e for e in errors if not isinstance(e, Cancelled)]
    if real or errors:
        raise (real or errors)[0]
    return outputs


def _keys(variants: list[_Variant]) -> tuple[dict, dict, dict]:
    """The shared store's key of every tensor each writer asks for, what computes it and its size.

    One move, one tensor: the same op on the same sources is the same tensor in any target, so TF
    and Flax share it.  A recurrent layer's outputs are one entry (computed together, kept until
    all are written); its side data is computed on its own, so the layer is not held until the
    side data is written.
    """
    keys: dict[tuple[str, str], Hashable] = {}
    made_by: dict[Hashable, tuple[Move, list[str]]] = {}
    sizes: dict[Hashable, int] = {}
    for v in variants:
        for name in v.order:
            move = v.moves[name]
            if len(move.targets) == 1:
                key = ("op", move.sources, move.op)
            elif name.startswith(EXTRA + "/"):
                key = ("side", id(move), name)
            else:
                key = ("move", id(move))
            keys[(v.framework, name)] = key
            if key in made_by:  # another target's tensor (same op, same sources): already sized
                continue
            made = [n for n, _, _ in move.targets if not n.startswith(EXTRA + "/")] if key[0] == "move" else [name]
            made_by[key] = (move, made)
            # a target that is the canonical tensor itself is a view of the source: it costs no memory
            sizes[key] = 0 if move.op == "identity" else sum(_nbytes(s, d) for n, s, d in move.targets if n in made)
    return keys, made_by, sizes
def _nbytes(shape, dt) -> int:
    return int(np.prod(shape, dtype=np.int64)) * np.dtype(dt).itemsize


def shard(items: list, size_of: Callable[[Any], int], max_bytes: int) -> list[list]:
    """Split in order, starting a new shard when the next item would pass the limit (transformers' rule).

    >>> shard([("a", 6), ("b", 6), ("c", 3)], lambda item: item[1], 10)
    [[('a', 6)], [('b', 6), ('c', 3)]]
    """
    shards, size = [[]], 0
    for spec in items:
        n = size_of(spec)
        if shards[-1] and size + n > max_bytes:
            shards.append([])
            size = 0
        shards[-1].append(spec)
        size += n
    return shards


def _keras_group(name: str) -> str:
    parts = name.split("/")
    return parts[1] if len(parts) >= 3 else h5_file.TOP_LEVEL


def _keras_order(specs: list, collection: dict[str, str], plan: Plan) -> list:
    """Keras' load order: layers in order of first appearance; in each, trainable then the rest."""
    if plan.tf_layout:  # a model was given: its own layers, and each layer's weights as it loads them
        rank: dict[str, int] = {}
        for _, names in plan.tf_layout:
            for name in names:
                rank.setdefault(name, len(rank))
        return sorted(specs, key=lambda s: rank[s[0]])
    layers: dict[str, list] = {}
    for spec in specs:
        layers.setdefault(_keras_group(spec[0]), []).append(spec)
    return [s for group in layers.values() for s in sorted(group, key=lambda s: collection[s[0]] != PARAMS)]


def _keras_layers(specs: list, collection: dict[str, str], plan: Plan) -> list[tuple[str, list[str]]]:
    if plan.tf_layout:
        have = {name for name, _, _ in specs}
        return [(layer, [n for n in names if n in have]) for layer, names in plan.tf_layout]
    layers: dict[str, list[str]] = {layer: [] for layer in plan.tf_layers}
    for name, _, _ in specs:
        for group in plan.tf_groups(name) if plan.tf_groups else [_keras_group(name)]:
            layers.setdefault(group, []).append(name)
    return list(layers.items())

