"""Which named generator (``maps.computed``) reproduces a PyTorch-only tensor, and from which config fields.

No transformers import: runs (and is doctested) in the project environment too.

>>> from tensorferry.converters.maps.computed import evaluate
>>> cfg = {"max_position_embeddings": 6, "d_model": 4, "num_layers": 2}
>>> spec = detect_computed(evaluate({"fn": "sinusoidal", "params": {"rows": 6, "dim": 4}}, {}), cfg)
>>> spec
{'fn': 'sinusoidal', 'params': {'rows': 'max_position_embeddings', 'dim': 'd_model'}}
>>> detect_computed(np.zeros((), np.int64), cfg)
{'fn': 'zeros', 'params': {'shape': []}}
>>> detect_computed(np.array([[0, 1, 2, 3, 4, 5]]), cfg)["params"]
{'n': 'max_position_embeddings'}
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from ..computed import GENERATORS, config_value

# Config expressions tried first for a parameter (then any integer field of the config, then a//b).
HINTS: dict[str, list[str]] = {
    "rows": ["max_position_embeddings", "max_source_positions", "max_target_positions", "n_positions",
             "max_encoder_position_embeddings", "max_decoder_position_embeddings"],
    "n": ["max_position_embeddings", "n_positions", "max_source_positions", "max_target_positions"],
    "dim": ["d_model", "hidden_size", "embedding_size", "emb_dim", "n_embd", "dim",
            "hidden_size//num_attention_heads", "d_model//encoder_attention_heads", "d_model//decoder_attention_heads"],
    "window": ["window_size"],
}
_GENERIC = HINTS["rows"] + HINTS["dim"]


def express(value: int, config: Mapping, hints: list[str]) -> str | int | None:
    """A config expression worth ``value`` (hints first), the literal 1 for a unit axis, else None.

    >>> express(8, {"hidden_size": 32, "num_attention_heads": 4}, [])
    'hidden_size//num_attention_heads'
    >>> express(1, {}, []), express(7, {"a": 3}, [])
    (1, None)
    """
    if value == 1:
        return 1
    ints = sorted(k for k, v in config.items() if isinstance(v, int) and not isinstance(v, bool))
    tries = list(dict.fromkeys(hints + _GENERIC + ints + [f"{a}//{b}" for a in ints for b in ints if a != b]))
    for expr in tries:
        try:
            if config_value(expr, config) == value:
                return expr
        except (KeyError, ZeroDivisionError):
            continue
    return None


def _same(got: np.ndarray, want: np.ndarray) -> bool:
    if got.shape != want.shape:
        return False
    if want.dtype.kind == "f":
        return bool(np.allclose(got.astype(np.float64), want.astype(np.float64), rtol=0, atol=1e-6))
    return bool(np.array_equal(got, want))


def _candidates(value: np.ndarray) -> list[tuple[str, dict]]:
    """(generator, params with integer values) that could have made ``value``, cheapest first."""
    out: list[tuple[str, dict]] = []
    flat = value.ravel()
    if value.size and np.all(flat == 0):
        out.append(("zeros", {"shape": list(value.shape)}))
    elif value.size and np.all(flat == flat[0]) and value.dtype.kind in "fiu":
        out.append(("full", {"shape": list(value.shape), "value": flat[0].item()}))
    if value.ndim == 2 and value.shape[0] == 1 and value.dtype.kind in "iu":
        out.append(("arange", {"n": value.shape[1]} | ({"start": int(flat[0])} if flat[0] else {})))
    if value.ndim == 2 and value.dtype.kind == "f":
        out += [("sinusoidal", {"rows": value.shape[0], "dim": value.shape[1]}),
                ("sinusoidal_interleaved", {"rows": value.shape[0], "dim": value.shape[1]})]
    if value.ndim == 2 and value.shape[0] == value.shape[1] and value.dtype.kind in "iu":
        w = math.isqrt(value.shape[0])
        if w * w == value.shape[0]:
            out.append(("relative_position_index", {"window": w}))
    if value.ndim == 4 and value.shape[:2] == (1, 1) and value.shape[2] == value.shape[3] and value.dtype == bool:
        out.append(("causal_mask", {"n": value.shape[2]}))
    return out


def detect_computed(value: np.ndarray, config: Mapping) -> dict | None:
    """The ``computed`` spec of a map entry whose fresh PyTorch value is ``value``, or None."""
    value = np.asarray(value)
    for fn, params in _candidates(value):
        _, default = GENERATORS[fn]
        spec: dict = {"fn": fn, "params": {}}
        if value.dtype.name != default:
            spec["dtype"] = value.dtype.name
        ok = True
        for name, v in params.items():
            if name == "value" or name == "start":
                spec["params"][name] = v
            elif name == "shape":
                dims = [express(d, config, []) for d in v]
                ok &= all(d is not None for d in dims)
                spec["params"][name] = dims
            else:
                expr = express(v, config, HINTS.get(name, []))
                ok &= expr is not None
                spec["params"][name] = expr
        if not ok:
            continue
        from ..computed import evaluate

        try:
            if _same(evaluate(spec, config), value):
                return spec
        except (KeyError, ValueError, TypeError):
            continue
    return None
