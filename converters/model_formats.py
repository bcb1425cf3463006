"""The formats a user's own Keras 3 model or NNX module defines: their writers, and reading a Keras 3
source with its model.  Imported by the pipeline; Keras, JAX and Orbax only load when such a model is given.

>>> keras_report(None) is None
True
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .checkpoint import Source
from .constants import EXTRA, NNX_DIR, TIES_KEY
from .errors import InputError
from .plan import Plan
from .written import Output, Variant


def keras_report(archive: dict | None) -> dict | None:
    """What a ``.keras`` archive's config.json and metadata.json say: class, module, Keras version, config.

    >>> keras_report({"config": {"class_name": "Functional", "module": "keras", "config": {"name": "m"}}, "metadata": {"keras_version": "3.15.1"}})["class_name"]
    'Functional'
    """
    if not archive:
        return None
    config, meta = archive.get("config") or {}, archive.get("metadata") or {}
    pick = lambda d, k: d.get(k) if isinstance(d.get(k), str) else None  # noqa: E731 - only text is reported as such
    return {"class_name": pick(config, "class_name"), "module": pick(config, "module"),
            "registered_name": pick(config, "registered_name"), "keras_version": pick(meta, "keras_version"),
            "date_saved": pick(meta, "date_saved"), "config": config.get("config")}


def keras3_structure(source: Source, model: object) -> list[str]:
    """A Keras 3 model as the structure of its own weights: names from its variables, and its layers'
    creation order (as module regexes, every prefix listed where it first appears)."""
    from .checkpoint import use_keras3_model
    from .guided import keras3

    if not keras3.is_keras3(model):
        raise InputError("--model tf", "for a TF source that is not a target, the model must be a Keras 3 model (its structure)")
    use_keras3_model(source, model)
    order: dict[str, None] = {}
    for slot in keras3.slots(model):
        parts = slot.module.split(".")
        for i in range(1, len(parts) + 1):
            order.setdefault(re.escape(".".join(parts[:i])), None)
    return list(order)


def keras3_variant(plan: Plan, out: Path, extras: bool, digests: bool, max_shard: int) -> Variant:
    """A Keras 3 model's own ``model.weights.h5`` (Keras' groups and order, bfloat16 kept), or past
    ``max_shard`` bytes the ``model.weights.json`` index and shards Keras' ``ShardedH5IOStore`` writes."""
    from .formats import keras3_file

    moves = plan.targets["tf"]
    by_name = {name: m for m, _ in moves for name, _, _ in m.targets}
    planned = {n: (s, d) for m, _ in moves for n, s, d in m.targets if not n.startswith(EXTRA + "/")}
    specs = {path: planned[path] for path, _ in plan.keras3.datasets}
    side = [n for m, _ in moves for n, _, _ in m.targets if n.startswith(EXTRA + "/")] if extras else []
    ties = plan.source.ties

    layout = plan.keras3
    total = sum(int(np.prod(s, dtype=np.int64)) * d.itemsize for s, d in specs.values())
    of_data, of_group = keras3_file.shard_plan(specs, layout.groups, layout.made_at, max_shard) if total > max_shard else ([], [])
    count = max(of_data + of_group, default=0) + 1

    def write(produce: Callable[[str], np.ndarray], files) -> Output:
        side_arrays = {n[len(EXTRA) + 1:]: np.asarray(produce(n)) for n in side}
        if ties and extras:
            side_arrays[TIES_KEY] = np.frombuffer(json.dumps(ties).encode(), np.uint8)
        if not of_data:
            name = keras3_file.WEIGHTS
            digest = keras3_file.write(files.path(out / name), layout.groups, specs, produce, side_arrays or None, digests)
            return Output("tf", [name], digest.size, len(specs), {name: digest} if digests else {})
        written, weight_map = {}, {}
        for i in range(count):
            name = keras3_file.shard_name(i)
            mine = {p: spec for (p, spec), k in zip(specs.items(), of_data) if k == i}
            groups = [g for g, k in zip(layout.groups, of_group) if k == i and g[1]]  # attributes where Keras made them
            written[name] = keras3_file.write(files.path(out / name), groups, mine, produce,
                                              side_arrays if i == count - 1 and side_arrays else None, digests)
            for path in mine:  # Keras: a group's first variable records its shard's name, a second makes it a list
                group = "/" + path.rsplit("/", 1)[0]
                if group not in weight_map:
                    weight_map[group] = name
                else:
                    have = weight_map[group] if isinstance(weight_map[group], list) else [weight_map[group]]
                    weight_map[group] = have + [name] * (name not in have)
        index = {"metadata": {"total_size": float(total)},
                 "weight_map": weight_map}
        files.path(out / keras3_file.INDEX).write_text(json.dumps(index, indent=4))
        listed = [*written, keras3_file.INDEX]
        return Output("tf", listed, sum(d.size for d in written.values()), len(specs), written if digests else {})

    return Variant("tf", by_name, side + keras3_file.order(specs), write)


def nnx_variant(plan: Plan, out: Path) -> Variant:
    """An NNX model's Orbax checkpoint: its state, weights from the source, RNG state from the template."""
    from .formats import orbax_dir

    moves = plan.targets["flax"]
    by_name = {name: m for m, _ in moves for name, _, _ in m.targets}
    layout = plan.nnx

    def write(produce: Callable[[str], np.ndarray], files) -> Output:
        final = out / NNX_DIR
        size = orbax_dir.write(files.folder(final), layout.template, layout.paths, produce)
        return Output("flax", [NNX_DIR + "/"], size, len(layout.paths), {})

    return Variant("flax", by_name, orbax_dir.order(layout.template, layout.paths), write)
