"""sha256 of a file computed while it is written, so publishing never reads a written file again.

The Hub's LFS protocol names every large file by its sha256 before the upload; computing it as the
bytes go out saves a whole extra read of every variant.  ``sample`` is the file's first 512 bytes,
which huggingface_hub's preupload request carries.

>>> import io
>>> w = HashingWriter(io.BytesIO())
>>> _ = w.write(b"hello")
>>> d = w.digest()
>>> d.size, d.sha256[:12], d.sample
(5, '2cf24dba5fb0', b'hello')
>>> HashingWriter(None).read(io.BytesIO(b"hello")).digest() == d
True
"""
from __future__ import annotations

import hashlib
import threading
from concurrent.futures import CancelledError
from dataclasses import dataclass
from typing import BinaryIO

SAMPLE = 512
# Writes go out in blocks this large: small header writes are gathered, tensors pass straight through.
BUFFER = 1 << 20


@dataclass(frozen=True)
class FileDigest:
    """Size, sha256 (hex; None when not computed) and first bytes of a written file."""

    size: int
    sha256: str | None
    sample: bytes


class HashingWriter:
    """A binary file wrapper that hashes every byte written through it, in order (``digest=False``: counts only)."""

    def __init__(self, fh: BinaryIO | None, digest: bool = True) -> None:
        self.fh = fh
        self._hash = hashlib.sha256() if digest else None
        self._sample = bytearray()
        self.size = 0

    def write(self, data: bytes | memoryview) -> int:
        view = memoryview(data).cast("B")
        self.update(view)
        if self.fh is not None:
            self.fh.write(view)
        return len(view)

    def update(self, data: bytes | memoryview) -> None:
        """Hash bytes that are already in the file at the current position (not written again)."""
        view = memoryview(data).cast("B")
        if self._hash is not None:
            self._hash.update(view)
        if len(self._sample) < SAMPLE:
            self._sample += view[: SAMPLE - len(self._sample)]
        self.size += len(view)

    def read(self, fh: BinaryIO, stop: threading.Event | None = None) -> "HashingWriter":
        """Hash what is left of the open (unbuffered) file FH, block by block: a file written elsewhere.
        STOP, once set by another thread, ends the reading early (``CancelledError``)."""
        buf = memoryview(bytearray(BUFFER))
        while n := fh.readinto(buf):
            if stop is not None and stop.is_set():
                raise CancelledError(f"hashing {getattr(fh, 'name', 'a file')} stopped")
            self.update(buf[:n])
        return self

    def digest(self) -> FileDigest:
        return FileDigest(self.size, self._hash.hexdigest() if self._hash is not None else None, bytes(self._sample))
