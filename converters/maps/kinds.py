"""Layout maps: data that names each module's kind for one architecture (``config.json`` ``model_type``).

A map is JSON: ``{"model_type": "...", "kinds": {"<regex on module name>": "<kind>[:<multiplier>]"},
"order": ["<regex>", ...]}``.  The optional ``order`` lists module names (regexes, pre-order) in
the model's creation order, which Keras' positional ``load_weights`` needs and safetensors loses.
Maps ship in ``converters/maps/data/kinds/``; ``--layout-map FILE`` gives another.

>>> find_full({"model_type": "tensorferry-tiny-cnn"})["kinds"]["dw"]
'depthwise:2'
>>> find_full({"model_type": "no-such-model"}) is None
True
"""
from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from ..errors import InputError
from ..formats import limits
from ..kinds import check_regexes, check_table

MAPS = Path(__file__).parent / "data" / "kinds"


def load_full(source: str | Path | dict) -> dict:
    """A whole map (``kinds`` and the optional ``order``), validated: every regex compiles, every kind is known."""
    where = source if not isinstance(source, dict) else "layout map"
    data = source if isinstance(source, dict) else limits.read_json(source, "layout map")
    table = data.get("kinds") if isinstance(data, dict) else None
    if not isinstance(table, dict):
        raise InputError(where, "a layout map needs a `kinds` object")
    order = data.get("order")
    if order is not None and not (isinstance(order, list) and all(isinstance(o, str) for o in order)):
        raise InputError(where, "`order` must be a list of regexes")
    check_table(table, where)
    check_regexes(order or [], where, "`order`: ")
    return {"kinds": dict(table), "order": order}


@cache
def _registry() -> dict[str, Path]:
    out = {}
    for path in sorted(MAPS.glob("*.json")):
        out[json.loads(path.read_text())["model_type"]] = path
    return out


def find_full(config: dict | None) -> dict | None:
    """The whole shipped map for ``config["model_type"]``, or None."""
    model_type = (config or {}).get("model_type")  # a key of the registry, never part of a path
    path = _registry().get(model_type) if isinstance(model_type, str) else None
    return load_full(path) if path else None
