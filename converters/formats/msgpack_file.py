"""Flax ``flax_model.msgpack`` files, byte-compatible with ``flax.serialization``.

Flax stores a nested map of arrays; each array is msgpack ext type 1 holding the msgpack of
``(shape, dtype_name, raw_bytes)`` (type 3 for numpy scalars), and arrays over 1 GiB are split
into ``{"__msgpack_chunked_array__": True, "shape": {...}, "chunks": {...}}``.

``msgpack_restore`` would load the whole tree into memory, so reading walks the structure over
an mmap and keeps each array as a view; writing streams the same bytes ``to_bytes`` produces.
"""
from __future__ import annotations

import math
import mmap
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import msgpack
import numpy as np

from .. import dtypes
from ..errors import InputError
from . import limits, open_for_writing, raw_bytes
from .digest import BUFFER, FileDigest, HashingWriter

EXT_NDARRAY, EXT_NPSCALAR = 1, 3
MAX_CHUNK_SIZE = 2**30  # flax.serialization.MAX_CHUNK_SIZE
CHUNKED = "__msgpack_chunked_array__"
MAX_DEPTH = 64


@dataclass(frozen=True)
class ArrayRef:
    """Where an array's bytes lie in the mapped file."""

    shape: tuple[int, ...]
    dtype: np.dtype
    offset: int


class _Walker:
    """A minimal msgpack reader over a buffer that returns ``ArrayRef`` for array extensions."""

    def __init__(self, buf: mmap.mmap | bytes, where: Path) -> None:
        self.buf, self.where, self.size = buf, where, len(buf)

    def fail(self, pos: int, problem: str) -> InputError:
        return InputError(self.where, f"corrupt msgpack at byte {pos}: {problem}")

    def take(self, pos: int, n: int) -> bytes:
        if pos + n > self.size:
            raise self.fail(pos, f"needs {n} more bytes, the file ends at {self.size} (truncated?)")
        return self.buf[pos:pos + n]

    def uint(self, pos: int, n: int) -> int:
        return int.from_bytes(self.take(pos, n), "big")

    def value(self, pos: int, depth: int = 0):  # noqa: C901  (one branch per msgpack type)
        if depth > MAX_DEPTH:
            raise self.fail(pos, f"nested deeper than {MAX_DEPTH} levels")
        b = self.take(pos, 1)[0]
        p = pos + 1
        if b <= 0x7F:
            return b, p
        if b >= 0xE0:
            return b - 0x100, p
        if 0x80 <= b <= 0x8F:
            return self.map(p, b & 0x0F, depth)
        if 0x90 <= b <= 0x9F:
            return self.array(p, b & 0x0F, depth)
        if 0xA0 <= b <= 0xBF:
            return self.str(p, b & 0x1F)
        simple = {0xC0: None, 0xC2: False, 0xC3: True}
        if b in simple:
            return simple[b], p
        if b in (0xC4, 0xC5, 0xC6):  # bin 8/16/32
            w = 1 << (b - 0xC4)
            n = self.uint(p, w)
            return bytes(self.take(p + w, n)), p + w + n
        if b in (0xC7, 0xC8, 0xC9):  # ext 8/16/32
            w = 1 << (b - 0xC7)
            n = self.uint(p, w)
            return self.ext(self.take(p + w, 1)[0], p + w + 1, n, depth), p + w + 1 + n
        if b in (0xCA, 0xCB):
            n = 4 if b == 0xCA else 8
            return struct.unpack(">f" if n == 4 else ">d", self.take(p, n))[0], p + n
        if 0xCC <= b <= 0xCF:
            n = 1 << (b - 0xCC)
            return self.uint(p, n), p + n
        if 0xD0 <= b <= 0xD3:
            n = 1 << (b - 0xD0)
            return int.from_bytes(self.take(p, n), "big", signed=True), p + n
        if 0xD4 <= b <= 0xD8:  # fixext 1/2/4/8/16
            n = 1 << (b - 0xD4)
            return self.ext(self.take(p, 1)[0], p + 1, n, depth), p + 1 + n
        if b in (0xD9, 0xDA, 0xDB):
            w = 1 << (b - 0xD9)
            return self.str(p + w, self.uint(p, w))
        if b in (0xDC, 0xDD):
            w = 2 if b == 0xDC else 4
            return self.array(p + w, self.uint(p, w), depth)
        if b in (0xDE, 0xDF):
            w = 2 if b == 0xDE else 4
            return self.map(p + w, self.uint(p, w), depth)
        raise self.fail(pos, f"unknown type byte 0x{b:02x}")

    def str(self, p: int, n: int):
        try:
            return bytes(self.take(p, n)).decode("utf8"), p + n
        except UnicodeDecodeError:
            raise self.fail(p, "a string that is not UTF-8") from None

    def array(self, p: int, n: int, depth: int):
        if n > self.size - p:
            raise self.fail(p, f"an array of {n} items cannot fit the file")
        items = []
        for _ in range(n):
            v, p = self.value(p, depth + 1)
            items.append(v)
        return items, p

    def map(self, p: int, n: int, depth: int):
        if 2 * n > self.size - p:
            raise self.fail(p, f"a map of {n} entries cannot fit the file")
        out = {}
        for _ in range(n):
            at = p
            k, p = self.value(p, depth + 1)
            if not isinstance(k, str):
                raise self.fail(at, f"a map key that is {type(k).__name__}, not a string")
            if k in out:
                raise self.fail(at, f"key {k!r} appears twice in one map")
            out[k], p = self.value(p, depth + 1)
        return out, p

    def ext(self, code: int, p: int, n: int, depth: int):
        if code not in (EXT_NDARRAY, EXT_NPSCALAR):
            raise self.fail(p, f"unsupported msgpack extension type {code}")
        end = p + n
        if self.take(p, 1)[0] != 0x93:
            raise self.fail(p, "array extension does not hold (shape, dtype, bytes)")
        q = p + 1
        shape, q = self.value(q, depth + 1)
        name, q = self.value(q, depth + 1)
        b = self.take(q, 1)[0]
        if b not in (0xC4, 0xC5, 0xC6):
            raise self.fail(q, "array extension without raw bytes")
        w = 1 << (b - 0xC4)
        nbytes = self.uint(q + 1, w)
        start = q + 1 + w
        what = f"array at byte {p}"
        shape = limits.shape(shape, self.where, what)
        if not isinstance(name, str):
            raise self.fail(p, f"array dtype {name!r} is not a name")
        dt = limits.tensor_dtype(dtypes.from_name(name, self.where), self.where, what)
        if start + nbytes != end or nbytes != limits.nbytes(shape, dt, self.where, what):
            raise self.fail(p, f"array of shape {shape} {name} does not match its {nbytes} bytes")
        return ArrayRef(shape, dt, start)


class MsgpackFile:
    """A Flax msgpack file opened lazily; names are ``/``-joined tree paths.

    >>> import tempfile
    >>> from tensorferry.converters import convert
    >>> out = tempfile.mkdtemp()
    >>> _ = convert("fixtures/checkpoints/cnn", out, to="flax")
    >>> f = MsgpackFile(out + "/flax_model.msgpack")
    >>> f.infos["params/conv/kernel"]
    ((3, 3, 3, 8), dtype('float32'))
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        with limits.open_regular(self.path) as fh:
            if fh.seek(0, 2) == 0:
                raise InputError(self.path, "empty file")
            self._mmap = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        walker = _Walker(self._mmap, self.path)
        tree, end = walker.value(0)
        if end != len(self._mmap):
            raise InputError(self.path, f"corrupt msgpack: {len(self._mmap) - end} trailing bytes after the tree")
        if not isinstance(tree, dict):
            raise InputError(self.path, "not a Flax checkpoint: the msgpack root is not a map")
        self._leaves: dict[str, ArrayRef | list[ArrayRef]] = {}
        self._flatten(tree, ())

    def _flatten(self, node: dict, path: tuple[str, ...]) -> None:
        for key, value in node.items():
            here = path + (key,)
            name = limits.tensor_name("/".join(here), self.path)
            if isinstance(value, dict) and CHUNKED in value:
                leaf = self._chunked(name, value)
            elif isinstance(value, dict):
                self._flatten(value, here)
                continue
            elif isinstance(value, ArrayRef):
                leaf = value
            else:
                raise InputError(self.path, f"not a Flax checkpoint: {name} holds {type(value).__name__}, not an array")
            if name in self._leaves:  # {"a/b": x} and {"a": {"b": y}} are one name
                raise InputError(self.path, f"tensor {name!r} appears twice")
            self._leaves[name] = leaf

    def _chunked(self, name: str, value: dict) -> list[ArrayRef]:
        """A flax chunked array: ``shape`` and ``chunks`` as ``{"0": ...}`` maps; the chunks must add up."""
        def fail(problem: str) -> InputError:
            return InputError(self.path, f"chunked array {name!r}: {problem}")

        if value.get(CHUNKED) is not True or set(value) != {CHUNKED, "shape", "chunks"}:
            raise fail(f"expected exactly the keys {CHUNKED}=true, shape and chunks, found {sorted(value)}")
        shape, chunks = value["shape"], value["chunks"]
        for field, m in (("shape", shape), ("chunks", chunks)):
            if not isinstance(m, dict) or set(m) != {str(i) for i in range(len(m))}:
                raise fail(f"{field} is not a map with keys 0..n-1")
        dims = limits.shape([shape[str(i)] for i in range(len(shape))], self.path, f"chunked array {name!r}")
        refs = [chunks[str(i)] for i in range(len(chunks))]
        if not refs or not all(isinstance(r, ArrayRef) and len(r.shape) == 1 for r in refs):
            raise fail("chunks must be one or more flat arrays")
        if len({r.dtype for r in refs}) > 1:
            raise fail(f"chunks of different dtypes ({', '.join(sorted({r.dtype.name for r in refs}))})")
        need = limits.nbytes(dims, refs[0].dtype, self.path, f"chunked array {name!r}") // refs[0].dtype.itemsize
        if sum(r.shape[0] for r in refs) != need:
            raise fail(f"chunks hold {sum(r.shape[0] for r in refs)} elements, shape {dims} needs {need}")
        return [ArrayRef(dims, refs[0].dtype, -1)] + refs

    @property
    def infos(self) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        """Tree path → (shape, dtype), in file order."""
        out = {}
        for name, ref in self._leaves.items():
            head = ref[0] if isinstance(ref, list) else ref
            out[name] = (head.shape, head.dtype)
        return out

    def load(self, name: str) -> np.ndarray:
        """A read-only view on the mapped file (chunked arrays are joined into one copy)."""
        ref = self._leaves[name]
        if isinstance(ref, list):
            return np.concatenate([self._view(r) for r in ref[1:]]).reshape(ref[0].shape)
        return self._view(ref)

    def _view(self, ref: ArrayRef) -> np.ndarray:
        count = math.prod(ref.shape)
        return np.frombuffer(self._mmap, dtype=ref.dtype, count=count, offset=ref.offset).reshape(ref.shape)


def _ext_header(n: int) -> bytes:
    if n in (1, 2, 4, 8, 16):
        return bytes([0xD4 + n.bit_length() - 1, EXT_NDARRAY])
    if n <= 0xFF:
        return bytes([0xC7, n, EXT_NDARRAY])
    if n <= 0xFFFF:
        return b"\xc8" + struct.pack(">H", n) + bytes([EXT_NDARRAY])
    return b"\xc9" + struct.pack(">I", n) + bytes([EXT_NDARRAY])


def _bin_header(n: int) -> bytes:
    if n <= 0xFF:
        return bytes([0xC4, n])
    if n <= 0xFFFF:
        return b"\xc5" + struct.pack(">H", n)
    return b"\xc6" + struct.pack(">I", n)


def _map_header(n: int) -> bytes:
    return bytes([0x80 | n]) if n < 16 else (b"\xde" + struct.pack(">H", n) if n <= 0xFFFF else b"\xdf" + struct.pack(">I", n))


def _write_array(fh, arr: np.ndarray, max_chunk: int = MAX_CHUNK_SIZE) -> None:
    if arr.nbytes > max_chunk:
        # flax splits giant leaves so each msgpack object stays under 2 GiB
        flat = np.ascontiguousarray(arr).reshape(-1)
        step = max(1, max_chunk // arr.dtype.itemsize)
        fh.write(_map_header(3) + msgpack.packb(CHUNKED) + msgpack.packb(True))
        fh.write(msgpack.packb("shape") + msgpack.packb({str(i): d for i, d in enumerate(arr.shape)}))
        starts = range(0, flat.size, step)
        fh.write(msgpack.packb("chunks") + _map_header(len(starts)))
        for i, s in enumerate(starts):
            fh.write(msgpack.packb(str(i)))
            _write_array(fh, flat[s:s + step], max_chunk)
        return
    head = b"\x93" + msgpack.packb(list(arr.shape)) + msgpack.packb(arr.dtype.name) + _bin_header(arr.nbytes)
    fh.write(_ext_header(len(head) + arr.nbytes) + head)
    fh.write(raw_bytes(arr))


def _tree(specs: Sequence[tuple[str, tuple[int, ...], np.dtype]]) -> dict:
    """The nested map the file holds, leaves as (name, shape, dtype), in the order ``write`` emits them."""
    tree: dict = {}
    for name, shape, dt in specs:
        node = tree
        parts = name.split("/")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise AssertionError(f"{name}: a path is both a leaf and a subtree")
        node[parts[-1]] = (name, tuple(shape), np.dtype(dt))
    return tree


def order(specs: Sequence[tuple[str, tuple[int, ...], np.dtype]]) -> list[str]:
    """The order in which ``write`` asks for the tensors: the tree's, which groups names by path.

    >>> f32 = np.dtype("float32")
    >>> order([("a/x", (1,), f32), ("b/y", (1,), f32), ("a/z", (1,), f32)])
    ['a/x', 'a/z', 'b/y']
    """
    def walk(node: dict) -> list[str]:
        return [n for v in node.values() for n in (walk(v) if isinstance(v, dict) else [v[0]])]

    return walk(_tree(specs))


def write(
    path: str | Path,
    specs: Sequence[tuple[str, tuple[int, ...], np.dtype]],
    produce: Callable[[str], np.ndarray],
    extras: dict[str, dict[str, np.ndarray]] | None = None,
    max_chunk: int = MAX_CHUNK_SIZE,
    digest: bool = True,
) -> FileDigest:
    """Stream a Flax msgpack tree; names are ``/``-joined paths, ``produce(name)`` gives each array, in ``order(specs)``.

    ``extras`` adds whole small subtrees (side data) at the root after the arrays; arrays over
    ``max_chunk`` bytes are chunked as flax does (the default is flax's own limit).  With
    ``digest`` the file's sha256 is computed as it is written.

    >>> import numpy as np, tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "f.msgpack")
    >>> write(p, [("a/kernel", (2, 3), np.dtype("float32"))], lambda n: np.zeros((2, 3), "float32")).size
    52
    >>> MsgpackFile(p).infos
    {'a/kernel': ((2, 3), dtype('float32'))}
    """
    tree = _tree(specs)
    for key, sub in (extras or {}).items():
        tree[key] = sub

    def emit(fh, node: dict) -> None:
        fh.write(_map_header(len(node)))
        for key, value in node.items():
            fh.write(msgpack.packb(key))
            if isinstance(value, dict):
                emit(fh, value)
            elif isinstance(value, tuple):
                name, shape, dt = value
                arr = produce(name)
                if tuple(arr.shape) != shape or arr.dtype != dt:
                    raise AssertionError(f"{name}: planned {shape} {dt}, produced {arr.shape} {arr.dtype}")
                _write_array(fh, arr, max_chunk)
                del arr  # not held while the next tensor is computed: memory stays near one tensor
            else:
                _write_array(fh, np.asarray(value), max_chunk)

    with open_for_writing(path, BUFFER) as fh:
        out = HashingWriter(fh, digest)
        emit(out, tree)
    return out.digest()
