"""Computed tensors: PyTorch tensors a TF or Flax file does not hold but the config defines.

A map entry may carry ``"computed": {"fn": NAME, "params": {PARAM: EXPR}}``.  ``NAME`` is one of
the generators below (each one architecture-independent formula, as transformers writes it);
``EXPR`` is an integer or a config expression (``"max_position_embeddings"``,
``"hidden_size//num_attention_heads"``).  The generator recorded the entry by reproducing the
tensor of a freshly built PyTorch model; converting back to PyTorch evaluates it against the
checkpoint's own config.  Data, not code per model: a new architecture needs a map entry only.

>>> evaluate({"fn": "arange", "params": {"n": "max_position_embeddings"}}, {"max_position_embeddings": 4}).tolist()
[[0, 1, 2, 3]]
>>> evaluate({"fn": "zeros", "params": {"shape": []}, "dtype": "int64"}, {}).tolist()
0
>>> evaluate({"fn": "sinusoidal", "params": {"rows": 3, "dim": 4}}, {}).shape
(3, 4)
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import numpy as np


def _sinusoidal(rows: int, dim: int, interleaved: bool = False) -> np.ndarray:
    # transformers' Marian/Pegasus/RoFormer table (sin in the first half, cos in the second), computed
    # in float64 with numpy and cast once, as its `_init_weight` does; XLM interleaves sin and cos.
    # The same float64 operations as transformers' nested list, element for element, vectorised.
    enc = np.arange(rows, dtype=np.float64)[:, None] / np.power(10000, 2 * (np.arange(dim) // 2) / dim)[None, :]
    out = np.empty((rows, dim), dtype=np.float32)
    if interleaved:
        out[:, 0::2] = np.sin(enc[:, 0::2]).astype(np.float32)
        out[:, 1::2] = np.cos(enc[:, 1::2]).astype(np.float32)
        return out
    sentinel = dim // 2 if dim % 2 == 0 else dim // 2 + 1
    out[:, :sentinel] = np.sin(enc[:, 0::2]).astype(np.float32)
    out[:, sentinel:] = np.cos(enc[:, 1::2]).astype(np.float32)
    return out


def _relative_position_index(window: int, window_w: int | None = None) -> np.ndarray:
    # Swin's index into its relative_position_bias_table for a (window x window_w) window.
    h, w = window, window_w or window
    coords = np.stack(np.meshgrid(np.arange(h), np.arange(w), indexing="ij")).reshape(2, -1)
    rel = (coords[:, :, None] - coords[:, None, :]).transpose(1, 2, 0).copy()
    rel[:, :, 0] += h - 1
    rel[:, :, 1] += w - 1
    rel[:, :, 0] *= 2 * w - 1
    return rel.sum(-1).astype(np.int64)


# name → (function of the evaluated params, default dtype).  The dtype of an entry may override it.
GENERATORS: dict[str, tuple[Callable[..., np.ndarray], str]] = {
    "zeros": (lambda shape: np.zeros(tuple(shape)), "int64"),
    "full": (lambda shape, value: np.full(tuple(shape), value), "float32"),
    "arange": (lambda n, start=0: np.arange(start, start + n)[None, :], "int64"),
    "sinusoidal": (lambda rows, dim: _sinusoidal(rows, dim), "float32"),
    "sinusoidal_interleaved": (lambda rows, dim: _sinusoidal(rows, dim, interleaved=True), "float32"),
    "relative_position_index": (_relative_position_index, "int64"),
    "causal_mask": (lambda n: np.tril(np.ones((n, n), dtype=bool))[None, None], "bool"),
}

_EXPR = re.compile(r"([A-Za-z_][A-Za-z0-9_]*|\d+)(?:(//|\*\*|\*|-|\+)([A-Za-z_][A-Za-z0-9_]*|\d+))?")


def config_value(expr: object, config: Mapping) -> object:
    """An expression of the config: an int/float/list, a field name, or ``a OP b`` with ``// * ** + -``.

    >>> config_value("hidden_size//num_attention_heads", {"hidden_size": 32, "num_attention_heads": 4})
    8
    >>> config_value([1, "n"], {"n": 5})
    [1, 5]
    """
    if isinstance(expr, list):
        return [config_value(e, config) for e in expr]
    if not isinstance(expr, str):
        return expr
    m = _EXPR.fullmatch(expr.replace(" ", ""))
    if not m:
        raise KeyError(f"cannot read config expression {expr!r}")

    def term(t: str) -> object:
        if t.isdigit():
            return int(t)
        if t not in config:
            raise KeyError(f"the config has no {t!r}")
        return config[t]

    a = term(m.group(1))
    if not m.group(2):
        return a
    b = term(m.group(3))
    if not all(isinstance(x, int) and not isinstance(x, bool) for x in (a, b)):
        raise KeyError(f"{expr!r}: both sides must be integers in the config")
    return {"//": lambda: a // b, "*": lambda: a * b, "**": lambda: a ** b, "+": lambda: a + b, "-": lambda: a - b}[m.group(2)]()


def evaluate(spec: Mapping, config: Mapping) -> np.ndarray:
    """The tensor a map entry's ``computed`` spec gives under ``config``; KeyError if the config lacks a field."""
    fn, default = GENERATORS[spec["fn"]]
    params = {k: config_value(v, config) for k, v in spec.get("params", {}).items()}
    return np.array(fn(**params), dtype=spec.get("dtype", default), order="C")  # 0-d stays 0-d


def describe(spec: Mapping) -> str:
    """One line for ``--explain``: ``sinusoidal(rows=max_position_embeddings, dim=d_model)``.

    >>> describe({"fn": "arange", "params": {"n": "max_position_embeddings"}})
    'computed: arange(n=max_position_embeddings)'
    """
    return f"computed: {spec['fn']}(" + ", ".join(f"{k}={v}" for k, v in spec.get("params", {}).items()) + ")"
