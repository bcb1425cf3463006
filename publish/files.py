"""A folder's files of one framework's variant, and their digests: shared by the mixins, the training
checkpoints and the publisher.

>>> is_variant_file("model-00001-of-00002.safetensors", "pt"), is_variant_file("../model.safetensors", "pt")
(True, False)
>>> import tempfile
>>> from pathlib import Path
>>> folder = Path(tempfile.mkdtemp())
>>> for name in ("tf_model.h5", "model.safetensors", "notes.txt"):
...     _ = (folder / name).write_bytes(b"abc")
>>> [p.name for p in variant_files(folder, "tf")], sha256(folder / "notes.txt")[:12]
(['tf_model.h5'], 'ba7816bf8f01')
>>> digest(folder / "notes.txt")
FileDigest(size=3, sha256='ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad', sample=b'abc')
>>> stop = threading.Event(); stop.set()
>>> digest(folder / "notes.txt", stop)  # doctest: +IGNORE_EXCEPTION_DETAIL
Traceback (most recent call last):
concurrent.futures._base.CancelledError: hashing .../notes.txt stopped
"""
from __future__ import annotations

import fnmatch
import hashlib
import threading
from concurrent.futures import CancelledError
from pathlib import Path

from tensorferry.converters.constants import FILES
from tensorferry.converters.formats.digest import SAMPLE, FileDigest

BLOCK = 4 << 20


def is_variant_file(name: str, fw: str) -> bool:
    """Whether NAME is a plain file name (no folder part) of framework FW's standard variant files."""
    return (isinstance(name, str) and "/" not in name and "\\" not in name
            and any(fnmatch.fnmatchcase(name, pat) for pat in FILES[fw].patterns))


def variant_files(folder: Path, fw: str) -> list[Path]:
    """FOLDER's files of framework FW's variant (single file, shards, index), sorted."""
    return [p for p in sorted(folder.iterdir()) if is_variant_file(p.name, fw)]


def sha256(path: Path) -> str:
    """The hex sha256 of the file at PATH, read in blocks."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def digest(path: Path, stop: threading.Event | None = None) -> FileDigest:
    """Size, sha256 and first bytes of the file at PATH: what the Hub client needs to upload it.
    STOP, once set by another thread, ends the reading early (``CancelledError``): a multi-GB file
    must not keep a process that gave up waiting for it."""
    h, size, sample = hashlib.sha256(), 0, b""
    buf = memoryview(bytearray(BLOCK))
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            if stop is not None and stop.is_set():
                raise CancelledError(f"hashing {path} stopped")
            sample = sample or bytes(buf[:min(n, SAMPLE)])
            h.update(buf[:n])
            size += n
    return FileDigest(size, h.hexdigest(), sample)
