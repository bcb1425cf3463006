"""safetensors, read through a validated header and an mmap, written as a stream.

Reading maps the file: tensors are views on page-cache pages, so reading costs no anonymous
memory.  Writing lays out the header from the planned specs first, then streams each tensor.
"""
from __future__ import annotations

import json
import mmap
import struct
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .. import dtypes
from ..errors import InputError
from . import limits, open_for_writing, raw_bytes
from .digest import BUFFER, FileDigest, HashingWriter

MAX_HEADER = limits.MAX_JSON  # 100 MiB: the limit the safetensors library itself enforces


class SafetensorsFile:
    """A safetensors file opened for lazy reading.

    >>> f = SafetensorsFile("fixtures/checkpoints/cnn/model.safetensors")
    >>> f.infos["conv.weight"]
    ((8, 3, 3, 3), dtype('float32'))
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        with limits.open_regular(self.path) as fh:
            size = fh.seek(0, 2)
            if size < 8:
                raise InputError(self.path, f"not a safetensors file: only {size} bytes")
            fh.seek(0)
            (n,) = struct.unpack("<Q", fh.read(8))
            if n > MAX_HEADER:
                raise InputError(self.path, f"corrupt safetensors header: its length {n} is over the {MAX_HEADER}-byte limit")
            if 8 + n > size:
                raise InputError(self.path, f"truncated or corrupt: the header of {n} bytes does not fit a {size}-byte file")
            header = limits.parse_json(fh.read(n), self.path, "safetensors header")
            if not isinstance(header, dict):
                raise InputError(self.path, "corrupt safetensors header: not a JSON object")
            meta = header.pop("__metadata__", None)
            self.metadata: dict[str, str] = limits.string_map(meta, self.path, "__metadata__") if meta is not None else {}
            self._start = 8 + n
            self._entries = {limits.tensor_name(name, self.path): self._entry(name, e, size - self._start)
                             for name, e in header.items()}
            pos = 0
            for begin, end in sorted((e[2], e[3]) for e in self._entries.values()):
                if begin != pos:
                    raise InputError(self.path, f"corrupt safetensors header: data offsets overlap or leave a gap at byte {pos}")
                pos = end
            if self._start + pos != size:  # as the safetensors library: no bytes the header does not account for
                raise InputError(self.path, f"corrupt safetensors file: {size - self._start - pos} bytes after the last tensor")
            self._mmap = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if size else None

    def _entry(self, name: str, e: object, room: int) -> tuple[tuple[int, ...], np.dtype, int, int]:
        what = f"tensor {name!r}"
        if not isinstance(e, dict):
            raise InputError(self.path, f"corrupt safetensors header: {what} is {type(e).__name__}, not an object")
        dt = dtypes.from_safetensors(e.get("dtype"), self.path, what)
        shape = limits.shape(e.get("shape"), self.path, what)
        offsets = e.get("data_offsets")
        if not isinstance(offsets, list) or len(offsets) != 2:
            raise InputError(self.path, f"{what}: data_offsets {offsets!r} is not [begin, end]")
        begin, end = (limits.integer(x, self.path, f"{what}: data offset") for x in offsets)
        need = limits.nbytes(shape, dt, self.path, what)
        if begin > end or end - begin != need:
            raise InputError(self.path, f"corrupt safetensors header: {what} offsets [{begin}, {end}] hold {max(end - begin, 0)} bytes, "
                                        f"shape {shape} of {dt.name} needs {need}")
        if end > room:
            raise InputError(self.path, f"truncated or corrupt: {what} data ends at byte {self._start + end}, the file has {self._start + room}")
        return shape, dt, begin, end

    @property
    def infos(self) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        """Tensor name → (shape, dtype), in file order."""
        return {k: (v[0], v[1]) for k, v in self._entries.items()}

    def load(self, name: str) -> np.ndarray:
        """A read-only array viewing the mapped file."""
        shape, dt, begin, end = self._entries[name]
        count = (end - begin) // dt.itemsize
        arr = np.frombuffer(self._mmap, dtype=dt.newbyteorder("<"), count=count, offset=self._start + begin)
        return arr.reshape(shape)


def write(
    path: str | Path,
    specs: Sequence[tuple[str, tuple[int, ...], np.dtype]],
    produce: Callable[[str], np.ndarray],
    metadata: dict[str, str] | None = None,
    digest: bool = True,
) -> FileDigest:
    """Stream tensors into a safetensors file; ``produce(name)`` is called once per spec, in order.

    Returns the file's size and (with ``digest``) its sha256, computed while writing.

    >>> import numpy as np, tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "x.safetensors")
    >>> write(p, [("a", (2,), np.dtype("float32"))], lambda n: np.ones(2, "float32")).size
    72
    """
    header: dict[str, object] = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    offset = 0
    for name, shape, dt in specs:
        nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dt).itemsize
        header[name] = {"dtype": dtypes.to_safetensors(dt), "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the format pads the header to 8 bytes so data stays aligned
    with open_for_writing(path, BUFFER) as fh:
        out = HashingWriter(fh, digest)
        out.write(struct.pack("<Q", len(raw)))
        out.write(raw)
        for name, shape, dt in specs:
            arr = produce(name)
            if tuple(arr.shape) != tuple(shape) or arr.dtype != dt:
                raise AssertionError(f"{name}: planned {shape} {dt}, produced {arr.shape} {arr.dtype}")
            out.write(raw_bytes(arr.astype(arr.dtype.newbyteorder("<"), copy=False)))
            del arr  # not held while the next tensor is computed: memory stays near one tensor
    return out.digest()
