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
from . import raw_bytes
from .digest import FileDigest, HashingWriter

MAX_HEADER = 100 * 1024 * 1024  # the limit the safetensors library itself enforces


class SafetensorsFile:
    """A safetensors file opened for lazy reading.

    >>> f = SafetensorsFile("model.safetensors")          # doctest: +SKIP
    >>> f.infos["linear.weight"]                           # doctest: +SKIP
    ((4, 3), dtype('float32'))
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        with open(self.path, "rb") as fh:
            size = fh.seek(0, 2)
            if size < 8:
                raise InputError(self.path, f"not a safetensors file: only {size} bytes")
            fh.seek(0)
            (n,) = struct.unpack("<Q", fh.read(8))
            if n > MAX_HEADER or 8 + n > size:
                raise InputError(self.path, f"corrupt safetensors header: header length {n} does not fit a {size}-byte file")
            raw = fh.read(n)
            try:
                header = json.loads(raw)
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise InputError(self.path, f"corrupt safetensors header: not JSON ({e})") from None
            if not isinstance(header, dict):
                raise InputError(self.path, "corrupt safetensors header: not a JSON object")
            self.metadata: dict[str, str] = header.pop("__metadata__", None) or {}
            self._start = 8 + n
            self._entries: dict[str, tuple[tuple[int, ...], np.dtype, int, int]] = {}
            ends = []
            for name, e in header.items():
                try:
                    dt = dtypes.from_safetensors(e["dtype"], self.path)
                    shape = tuple(int(d) for d in e["shape"])
                    begin, end = (int(x) for x in e["data_offsets"])
                except (KeyError, TypeError, ValueError) as err:
                    raise InputError(self.path, f"corrupt safetensors header entry for {name!r}: {err}") from None
                if any(d < 0 for d in shape) or not 0 <= begin <= end:
                    raise InputError(self.path, f"corrupt safetensors header: bad shape or offsets for {name!r}")
                if end - begin != int(np.prod(shape, dtype=np.int64)) * dt.itemsize:
                    raise InputError(self.path, f"corrupt safetensors header: {name!r} offsets hold {end - begin} bytes, shape {shape} of {dt.name} needs {int(np.prod(shape)) * dt.itemsize}")
                if self._start + end > size:
                    raise InputError(self.path, f"truncated or corrupt: {name!r} data ends at byte {self._start + end}, the file has {size}")
                self._entries[name] = (shape, dt, begin, end)
                ends.append((begin, end))
            ends.sort()
            pos = 0
            for begin, end in ends:
                if begin != pos:
                    raise InputError(self.path, f"corrupt safetensors header: data offsets overlap or leave a gap at byte {pos}")
                pos = end
            self._mmap = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if size else None

    @property
    def infos(self) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        """Tensor name → (shape, dtype), in file order."""
        return {k: (v[0], v[1]) for k, v in self._entries.items()}

    def load(self, name: str) -> np.ndarray:
        """A read-only array viewing the mapped file."""
        shape, dt, begin, end = self._entries[name]
        count = int(np.prod(shape, dtype=np.int64))
        arr = np.frombuffer(self._mmap, dtype=dt.newbyteorder("<"), count=count, offset=self._start + begin)
        return arr.reshape(shape)


def write(
    path: str | Path,
    specs: Sequence[tuple[str, tuple[int, ...], np.dtype]],
    produce: Callable[[str], np.ndarray],
    metadata: dict[str, str] | None = None,
) -> FileDigest:
    """Stream tensors into a safetensors file; ``produce(name)`` is called once per spec, in order.

    Returns the file's size and sha256, computed while writing.

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
    with open(path, "wb") as fh:
        out = HashingWriter(fh)
        out.write(struct.pack("<Q", len(raw)))
        out.write(raw)
        for name, shape, dt in specs:
            arr = produce(name)
            if tuple(arr.shape) != tuple(shape) or arr.dtype != dt:
                raise AssertionError(f"{name}: planned {shape} {dt}, produced {arr.shape} {arr.dtype}")
            out.write(raw_bytes(arr.astype(arr.dtype.newbyteorder("<"), copy=False)))
    return out.digest()
