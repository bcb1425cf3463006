"""Bounds and checks for everything read from untrusted files: one layer every codec and reader uses.

A checkpoint is data from strangers.  Whatever a header, index or config declares is checked here
before it is used: integers are integers (never bools, floats or strings) within explicit ranges,
shapes have a bounded rank and byte size, dtypes are the numeric ones tensorferry converts, names
are bounded text, JSON is size-limited, duplicate-free and cannot exhaust the stack, and files are
regular files (a FIFO would block forever, a device never ends) inside the folder they belong to.
Every failure is an ``InputError`` naming the file and the problem.

>>> shape([4, 3], "w.safetensors", "tensor 'fc.weight'")
(4, 3)
>>> shape(["4", 3.7], "w.safetensors", "tensor 'fc.weight'")
Traceback (most recent call last):
...
tensorferry.converters.errors.InputError: w.safetensors: tensor 'fc.weight': shape ['4', 3.7] is not a list of non-negative integers
>>> parse_json(b'{"a": 1, "a": 2}', "index.json", "index")
Traceback (most recent call last):
...
tensorferry.converters.errors.InputError: index.json: index: key 'a' appears twice
"""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np

from .. import dtypes
from ..errors import InputError

MAX_JSON = 100 * 2**20  # safetensors' own header limit; also indexes, configs and layout maps
MAX_RANK = 32  # HDF5's limit (numpy's is 64); no weight comes near it
MAX_BYTES = 2**62  # one tensor; keeps every size and offset sum inside int64
MAX_NAME = 1024  # characters in a tensor name (transformers' longest are ~150)

_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a folder"}


def regular_file(path: str | os.PathLike, root: str | os.PathLike | None = None) -> Path:
    """``path`` when it is a regular file and, with ``root``, when it (links resolved) lies inside ``root``.

    Symbolic links are followed only within ``root`` (and, for a Hugging Face cache snapshot, its
    ``blobs`` folder): a downloaded folder cannot make tensorferry read, and copy out, a file elsewhere.

    >>> regular_file("fixtures/checkpoints/cnn/config.json", "fixtures/checkpoints/cnn").name
    'config.json'
    >>> regular_file("/dev/null")
    Traceback (most recent call last):
    ...
    tensorferry.converters.errors.InputError: /dev/null: not a regular file (a character device): refused
    """
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise InputError(path, "no such file") from None
    except OSError as e:
        raise InputError(path, f"cannot read: {e.strerror}") from None
    if not stat.S_ISREG(mode):
        raise InputError(path, f"not a regular file ({_KINDS.get(stat.S_IFMT(mode), 'special file')}): refused")
    if root is not None:
        real, base = path.resolve(), Path(root).resolve()
        inside = [base] + ([base.parent.parent / "blobs"] if base.parent.name == "snapshots" else [])
        if not any(real.is_relative_to(b) for b in inside):
            raise InputError(path, f"is a link to {real}, outside {base}: refused (only files inside the checkpoint folder are read)")
    return path


def open_regular(path: str | os.PathLike, root: str | os.PathLike | None = None):
    """Open a regular file for binary reading; never blocks on a FIFO swapped in after the check.

    >>> with open_regular("fixtures/checkpoints/cnn/model.safetensors") as fh:
    ...     len(fh.read(8))
    8
    """
    path = regular_file(path, root)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise InputError(path, f"cannot read: {e.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise InputError(path, "not a regular file: refused")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


class _Duplicate(Exception):
    pass


def _pairs(pairs: list[tuple[str, object]]) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise _Duplicate(key)
        out[key] = value
    return out


def _constant(name: str):
    raise ValueError(f"{name} is not JSON")


def parse_json(raw: bytes | str, where: object, what: str) -> object:
    """Strict JSON: no duplicate keys, no NaN/Infinity, deep nesting an error (not a RecursionError)."""
    try:
        return json.loads(raw, object_pairs_hook=_pairs, parse_constant=_constant)
    except _Duplicate as e:
        raise InputError(where, f"{what}: key {e.args[0]!r} appears twice") from None
    except RecursionError:
        raise InputError(where, f"{what}: JSON nested too deeply") from None
    except UnicodeDecodeError:
        raise InputError(where, f"{what}: not UTF-8 text") from None
    except ValueError as e:  # JSONDecodeError, NaN/Infinity, integers of thousands of digits
        raise InputError(where, f"{what}: not valid JSON ({e})") from None


def read_json(path: str | os.PathLike, what: str, root: str | os.PathLike | None = None) -> object:
    """A JSON file of at most ``MAX_JSON`` bytes, parsed strictly.

    >>> read_json("fixtures/checkpoints/cnn/config.json", "config")["model_type"]
    'tensorferry-tiny-cnn'
    """
    with open_regular(path, root) as fh:
        size = os.fstat(fh.fileno()).st_size
        if size > MAX_JSON:
            raise InputError(path, f"{what} of {size} bytes is over the {MAX_JSON}-byte limit")
        try:
            raw = fh.read()
        except OSError as e:
            raise InputError(path, f"cannot read: {e.strerror}") from None
    return parse_json(raw, path, what)


def integer(value: object, where: object, what: str, hi: int = MAX_BYTES) -> int:
    """A JSON/msgpack integer in ``[0, hi]``: bools, floats and strings are refused.

    >>> integer(48, "f", "offset")
    48
    >>> integer(True, "f", "offset")
    Traceback (most recent call last):
    ...
    tensorferry.converters.errors.InputError: f: offset True is not an integer in [0, 4611686018427387904]
    """
    if type(value) is not int or not 0 <= value <= hi:
        raise InputError(where, f"{what} {value!r} is not an integer in [0, {hi}]")
    return value


def shape(value: object, where: object, what: str) -> tuple[int, ...]:
    """A shape: a list of at most ``MAX_RANK`` non-negative integers."""
    if not isinstance(value, list | tuple) or not all(type(d) is int and 0 <= d <= MAX_BYTES for d in value):
        raise InputError(where, f"{what}: shape {value!r} is not a list of non-negative integers")
    if len(value) > MAX_RANK:
        raise InputError(where, f"{what}: rank {len(value)} is over the limit of {MAX_RANK}")
    return tuple(value)


def nbytes(dims: tuple[int, ...], dtype: np.dtype, where: object, what: str) -> int:
    """The byte size of a tensor, in Python integers (no int64 overflow), at most ``MAX_BYTES``.

    >>> nbytes((2**32, 2**32), np.dtype("float32"), "f", "t")
    Traceback (most recent call last):
    ...
    tensorferry.converters.errors.InputError: f: t: shape (4294967296, 4294967296) of float32 is 73786976294838206464 bytes, over the 4611686018427387904-byte limit
    """
    n = dtype.itemsize
    for d in dims:
        n *= d
    if n > MAX_BYTES:
        raise InputError(where, f"{what}: shape {dims} of {dtype.name} is {n} bytes, over the {MAX_BYTES}-byte limit")
    return n


def tensor_dtype(dtype: np.dtype, where: object, what: str) -> np.dtype:
    """A numeric dtype tensorferry converts, in native byte order; strings, objects, compounds refused.

    >>> tensor_dtype(np.dtype(">f4"), "f", "t").str
    '<f4'
    >>> tensor_dtype(np.dtype("S4"), "f", "dataset 'x'")
    Traceback (most recent call last):
    ...
    tensorferry.converters.errors.InputError: f: dataset 'x' has dtype bytes32 (|S4): not a numeric tensor type tensorferry converts (floats, bfloat16, float8, integers, bool)
    """
    dtype = np.dtype(dtype)
    if dtype.fields is None and dtype.kind != "O" and dtype.name in dtypes.TENSOR_DTYPES:
        return dtype.newbyteorder("=") if dtype.byteorder not in ("=", "|") else dtype
    raise InputError(where, f"{what} has dtype {dtype.name} ({dtype.str}): not a numeric tensor type tensorferry converts "
                            "(floats, bfloat16, float8, integers, bool)")


def tensor_name(name: object, where: object) -> str:
    """A tensor name: non-empty text of at most ``MAX_NAME`` characters, no control characters.

    >>> tensor_name("fc.weight", "f")
    'fc.weight'
    >>> tensor_name("", "f")
    Traceback (most recent call last):
    ...
    tensorferry.converters.errors.InputError: f: tensor name '' is not 1 to 1024 printable characters
    """
    if not isinstance(name, str) or not name or len(name) > MAX_NAME or any(ord(c) < 32 or ord(c) == 127 for c in name):
        shown = name[:60] + "…" if isinstance(name, str) and len(name) > 60 else name
        raise InputError(where, f"tensor name {shown!r} is not 1 to {MAX_NAME} printable characters")
    return name


def string_map(value: object, where: object, what: str) -> dict[str, str]:
    """A JSON object of strings to strings (safetensors metadata, tie records).

    >>> string_map({"format": "pt"}, "f", "__metadata__")
    {'format': 'pt'}
    """
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise InputError(where, f"{what} is not a map of strings to strings")
    return value


def ties(raw: bytes | str, where: object, what: str = "tie record (tensorferry.ties)") -> dict[str, str]:
    """A tie record: JSON ``{alias: tensor}`` of tensor names.

    >>> ties('{"lm_head.weight": "embed.weight"}', "f")
    {'lm_head.weight': 'embed.weight'}
    """
    out = string_map(parse_json(raw, where, what), where, what)
    for k, v in out.items():
        tensor_name(k, where), tensor_name(v, where)
    return out
