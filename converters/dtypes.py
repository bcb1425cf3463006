"""Dtype names of every format, all resolved to numpy dtypes (bfloat16 and float8 via ml_dtypes).

>>> from_safetensors("BF16").name
'bfloat16'
>>> to_safetensors(np.dtype("float16"))
'F16'
"""
from __future__ import annotations

import ml_dtypes  # noqa: F401  (numpy only knows bfloat16 once ml_dtypes is imported)
import numpy as np

from .errors import InputError

_SAFETENSORS = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
    "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2",
    "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8",
    "U64": "uint64", "U32": "uint32", "U16": "uint16", "U8": "uint8", "BOOL": "bool",
}
_TO_SAFETENSORS = {v: k for k, v in _SAFETENSORS.items()}

# What `--dtype` accepts, with the names people type.
ALIASES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "fp64": "float64",
           "float": "float32", "half": "float16"}


def from_name(name: str, where: object = "dtype") -> np.dtype:
    """A numpy dtype from a numpy/ml_dtypes name or alias: ``from_name("bf16").name == "bfloat16"``."""
    name = ALIASES.get(name, name)
    try:
        if name in ("bfloat16", "float8_e4m3fn", "float8_e5m2"):
            return np.dtype(getattr(ml_dtypes, name))
        dt = np.dtype(name)
    except TypeError as e:
        raise InputError(where, f"unknown dtype {name!r}") from e
    if dt.hasobject or dt.fields is not None:
        raise InputError(where, f"unsupported dtype {name!r}")
    return dt


def from_safetensors(code: str, where: object = "safetensors header") -> np.dtype:
    """The numpy dtype for a safetensors dtype code such as ``"F32"``."""
    if code not in _SAFETENSORS:
        raise InputError(where, f"unsupported safetensors dtype {code!r}")
    return from_name(_SAFETENSORS[code], where)


def to_safetensors(dtype: np.dtype) -> str:
    """The safetensors dtype code for a numpy dtype."""
    try:
        return _TO_SAFETENSORS[np.dtype(dtype).name]
    except KeyError:
        raise InputError("dtype", f"safetensors cannot hold {np.dtype(dtype).name}") from None


def is_float(dtype: np.dtype) -> bool:
    """True for float16/32/64, bfloat16 and float8 types."""
    return np.dtype(dtype).kind == "f" or np.dtype(dtype).name in ("bfloat16", "float8_e4m3fn", "float8_e5m2")


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Bit-for-bit equality (NaNs and -0.0 included) of two arrays of the same dtype and shape.

    >>> same_bits(np.array([0.0]), np.array([-0.0]))
    False
    """
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    return bool(np.array_equal(np.ascontiguousarray(a).reshape(-1).view(np.uint8), np.ascontiguousarray(b).reshape(-1).view(np.uint8)))
