"""Dtype names of every format, all resolved to numpy dtypes (bfloat16 and float8 via ml_dtypes).

>>> from_safetensors("BF16").name
'bfloat16'
>>> to_safetensors(np.dtype("float16"))
'F16'
"""
from __future__ import annotations

import numpy as np

from .errors import InputError
from .ops import contiguous

_SAFETENSORS = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
    "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2",
    "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8",
    "U64": "uint64", "U32": "uint32", "U16": "uint16", "U8": "uint8", "BOOL": "bool",
}
_TO_SAFETENSORS = {v: k for k, v in _SAFETENSORS.items()}
# Every dtype tensorferry converts (what safetensors holds); anything else in a file is refused.
TENSOR_DTYPES = frozenset(_SAFETENSORS.values())
# What `--dtype` may cast floating tensors to: an integer cast would truncate the weights.
CASTS = ("float16", "bfloat16", "float32", "float64")

# numpy knows these only through ml_dtypes.
ML_DTYPES = ("bfloat16", "float8_e4m3fn", "float8_e5m2")
# What `--dtype` accepts, with the names people type.
ALIASES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "fp64": "float64",
           "float": "float32", "half": "float16"}


def from_name(name: str, where: object = "dtype") -> np.dtype:
    """A numpy dtype from a numpy/ml_dtypes name or alias: ``from_name("bf16").name == "bfloat16"``."""
    if not isinstance(name, str):
        raise InputError(where, f"dtype {name!r} is not a name")
    name = ALIASES.get(name, name)
    try:
        if name in ML_DTYPES:
            import ml_dtypes  # 0.9 s to import, so only when a file holds such a tensor

            return np.dtype(getattr(ml_dtypes, name))
        dt = np.dtype(name)
    except (TypeError, ValueError):
        raise InputError(where, f"unknown dtype {name!r}") from None
    if dt.hasobject or dt.fields is not None:
        raise InputError(where, f"unsupported dtype {name!r}")
    return dt


def from_safetensors(code: str, where: object = "safetensors header", what: str = "") -> np.dtype:
    """The numpy dtype for a safetensors dtype code such as ``"F32"``; ``what`` names the tensor in errors."""
    if not isinstance(code, str) or code not in _SAFETENSORS:
        raise InputError(where, f"{what + ': ' if what else ''}unsupported safetensors dtype {code!r}")
    return from_name(_SAFETENSORS[code], where)


def cast_dtype(name: str, where: str = "--dtype") -> np.dtype:
    """The dtype ``--dtype`` casts to: floating types only (``CASTS``), aliases such as ``bf16`` allowed.

    >>> cast_dtype("bf16").name
    'bfloat16'
    >>> cast_dtype("int8")
    Traceback (most recent call last):
    ...
    tensorferry.converters.errors.InputError: --dtype: cannot cast to 'int8': choose float16, bfloat16, float32 or float64 (it casts floating tensors; an integer type would truncate them)
    """
    canonical = ALIASES.get(name, name) if isinstance(name, str) else name
    if canonical not in CASTS:
        try:
            from_name(canonical, where)
            what = f"cannot cast to {name!r}"
        except InputError:
            what = f"unknown dtype {name!r}"
        raise InputError(where, f"{what}: choose {', '.join(CASTS[:-1])} or {CASTS[-1]} (it casts floating tensors; an integer type would truncate them)")
    return from_name(canonical, where)


def to_safetensors(dtype: np.dtype) -> str:
    """The safetensors dtype code for a numpy dtype."""
    try:
        return _TO_SAFETENSORS[np.dtype(dtype).name]
    except KeyError:
        raise InputError("dtype", f"safetensors cannot hold {np.dtype(dtype).name}") from None


def is_float(dtype: np.dtype | str) -> bool:
    """True for float16/32/64, bfloat16 and float8 types (a name needs no ml_dtypes import).

    >>> is_float("bfloat16"), is_float(np.float16), is_float("int8")
    (True, True, False)
    """
    if isinstance(dtype, str) and dtype in ML_DTYPES:
        return True
    return np.dtype(dtype).kind == "f" or np.dtype(dtype).name in ML_DTYPES


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Bit-for-bit equality (NaNs and -0.0 included) of two arrays of the same dtype and shape.

    >>> same_bits(np.array([0.0]), np.array([-0.0])), same_bits(np.array([np.nan]), np.array([np.nan]))
    (False, True)
    >>> w = np.arange(64 * 96, dtype=np.float32).reshape(64, 96)
    >>> same_bits(w, np.ascontiguousarray(w.T).T), same_bits(w, np.ascontiguousarray(w.T).T + 1)
    (True, False)
    """
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    # Whole words, not bytes, and a transposed side copied band by band: 6× faster on Dense kernels.
    size = a.dtype.itemsize
    word = np.dtype(f"u{size}") if size in (1, 2, 4, 8) else np.dtype(np.uint8)
    return bool(np.array_equal(contiguous(a).reshape(-1).view(word), contiguous(b).reshape(-1).view(word)))
