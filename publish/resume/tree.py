"""A state tree (an optimizer's ``state_dict()``) split into JSON and a flat table of tensors, and joined back.

Only what JSON says exactly is kept in JSON: ``None``, booleans, integers, floats, strings, lists,
tuples and dicts; tensors go to the table (written as safetensors by the caller) and leave a
reference behind.  Anything else — a function, an object, a class — is refused with an
``InputError`` naming where it sits: nothing is ever pickled.  Tuples and dicts whose keys are not
plain strings (PyTorch keys optimizer state by parameter number) are tagged so they come back as
they were.

>>> doc, table = split({"state": {0: {"step": "T"}}, "betas": (0.9, 0.999)}, is_tensor=lambda v: v == "T")
>>> doc, table
({'state': {'__items__': [[0, {'step': {'__tensor__': 't0'}}]]}, 'betas': {'__tuple__': [0.9, 0.999]}}, {'t0': 'T'})
>>> join(doc, table)
{'state': {0: {'step': 'T'}}, 'betas': (0.9, 0.999)}
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tensorferry.converters.errors import InputError

TAGS = ("__tensor__", "__tuple__", "__items__", "__float__")
PLAIN = (type(None), bool, int, str)


def split(tree: Any, is_tensor: Callable[[Any], bool], where: str = "optimizer") -> tuple[Any, dict[str, Any]]:
    """TREE as a JSON-able document and ``{key: tensor}``; raises ``InputError`` at the first value JSON cannot hold."""
    table: dict[str, Any] = {}

    def walk(value: Any, path: str) -> Any:
        if is_tensor(value):
            key = f"t{len(table)}"
            table[key] = value
            return {"__tensor__": key}
        if isinstance(value, PLAIN):
            return value
        if isinstance(value, float):
            if not math.isfinite(value):
                return {"__float__": repr(value)}  # JSON has no inf/nan: kept as text
            return value
        if isinstance(value, tuple) and not hasattr(value, "_fields"):  # a named tuple is a class: refused below
            return {"__tuple__": [walk(v, f"{path}[{i}]") for i, v in enumerate(value)]}
        if isinstance(value, list):
            return [walk(v, f"{path}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, Mapping):
            keys = list(value)
            for k in keys:
                if not isinstance(k, (str, int)) or isinstance(k, bool):
                    raise InputError(where, f"{path}: key {k!r} ({type(k).__name__}) cannot be saved safely (only strings and integers)")
            if all(isinstance(k, str) and k not in TAGS for k in keys):
                return {k: walk(v, f"{path}.{k}") for k, v in value.items()}
            return {"__items__": [[k, walk(v, f"{path}[{k!r}]")] for k, v in value.items()]}
        raise InputError(where, f"{path}: a {type(value).__name__} cannot be saved safely (tensors, numbers, strings, "
                                "lists, tuples and dicts only; nothing is pickled)")

    return walk(tree, "state"), table


def read_table(path: Path, load: Callable[[str], Any]) -> Any:
    """LOAD(PATH) (a tensor file's reader); a missing, truncated or corrupt file is an ``InputError`` naming it.

    >>> read_table(Path("no-such-optimizer.safetensors"), lambda p: open(p, "rb"))
    Traceback (most recent call last):
    ...
    tensorferry.converters.errors.InputError: no-such-optimizer.safetensors: missing: the checkpoint lacks it
    """
    if not path.is_file():
        raise InputError(path, "missing: the checkpoint lacks it")
    try:
        return load(str(path))
    except Exception as e:  # noqa: BLE001 - the readers raise their own types (SafetensorError, msgpack's) for bad bytes
        raise InputError(path, f"truncated or corrupt: {type(e).__name__}: {e}") from None


def join(doc: Any, table: Mapping[str, Any], where: str = "optimizer") -> Any:
    """The tree ``split`` gave DOC and TABLE for; raises ``InputError`` for a reference the table lacks or a
    malformed tag (a damaged or hostile record).

    >>> join({"__float__": ["inf"]}, {})
    Traceback (most recent call last):
    ...
    tensorferry.converters.errors.InputError: optimizer: a __float__ tag holds ['inf'], not the text of a float
    """
    if isinstance(doc, list):
        return [join(v, table, where) for v in doc]
    if not isinstance(doc, dict):
        return doc
    if "__tensor__" in doc:
        key = doc["__tensor__"]
        if not isinstance(key, str) or key not in table:
            raise InputError(where, f"refers to tensor {key!r}, which the tensor file lacks")
        return table[key]
    if "__float__" in doc:
        text = doc["__float__"]
        if not isinstance(text, str) or text.strip().lower().lstrip("+-") not in ("inf", "nan", "infinity"):
            raise InputError(where, f"a __float__ tag holds {text!r}, not the text of a float")
        return float(text)
    if "__tuple__" in doc:
        if not isinstance(doc["__tuple__"], list):
            raise InputError(where, f"a __tuple__ tag holds a {type(doc['__tuple__']).__name__}, not a list")
        return tuple(join(v, table, where) for v in doc["__tuple__"])
    if "__items__" in doc:
        items = doc["__items__"]
        if not isinstance(items, list) or not all(isinstance(p, list) and len(p) == 2 and isinstance(p[0], (str, int))
                                                  and not isinstance(p[0], bool) for p in items):
            raise InputError(where, "an __items__ tag is not a list of [key, value] pairs with string or integer keys")
        return {k: join(v, table, where) for k, v in items}
    return {k: join(v, table, where) for k, v in doc.items()}
