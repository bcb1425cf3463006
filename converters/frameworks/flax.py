"""Flax: restore a ``flax_model.msgpack`` into a variables tree, checking keys and shapes.

>>> from tensorferry.fixtures import cnn
>>> module, template = cnn.flax_model(cnn.CONFIG)
>>> import tempfile; from tensorferry.converters import convert
>>> out = tempfile.mkdtemp(); _ = convert("fixtures/checkpoints/cnn", out, to=["flax"])
>>> variables, report = load_variables(template, out)
>>> sorted(variables), report["missing"]
(['batch_stats', 'params'], [])
"""
from __future__ import annotations

from typing import Any

import numpy as np
from flax.serialization import from_state_dict

from ..checkpoint import open_source
from ..constants import EXTRA


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": x}}`` → ``{"a/b": x}``.

    >>> flatten({"a": {"b": 1}, "c": 2})
    {'a/b': 1, 'c': 2}
    """
    out = {}
    for k, v in tree.items():
        p = f"{prefix}/{k}" if prefix else str(k)
        out.update(flatten(v, p) if hasattr(v, "items") else {p: v})
    return out


def load_variables(template: dict, path: str) -> tuple[dict, dict]:
    """Restore PATH's Flax weights into the template's structure: (variables, load report).

    Raises ``ValueError`` naming missing, unexpected and mis-shaped leaves (``from_bytes`` checks none).
    """
    source = open_source(path, "flax")
    names = [n for n in source.infos if not n.startswith(EXTRA + "/")]
    # transformers' rule: a bare params tree when the model has only params, else one key per collection.
    wrapped = any(n.startswith("params/") for n in names) and {n.split("/", 1)[0] for n in names} <= set(template) | {"params"}
    have = {(n if wrapped else "params/" + n): n for n in names}
    want = {k: tuple(np.shape(v)) for k, v in flatten(dict(template)).items()}
    missing = sorted(set(want) - set(have))
    unexpected = sorted(set(have) - set(want))
    shapes = [f"{k} {tuple(source.infos[have[k]][0])} vs {want[k]}" for k in want if k in have and tuple(source.infos[have[k]][0]) != want[k]]
    report = {"missing": missing, "unexpected": unexpected, "shape_mismatch": shapes}
    if missing or unexpected or shapes:
        raise ValueError(f"{path}: does not match the model: missing {missing[:8]}, unexpected {unexpected[:8]}, shapes {shapes[:4]}")
    tree: dict = {}
    for key, native in have.items():
        node = tree
        *parents, leaf = key.split("/")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = source.load(native)
    return from_state_dict(dict(template), tree), report
