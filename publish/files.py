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
import threading
from pathlib import Path

from tensorferry.converters.constants import FILES
from tensorferry.converters.formats.digest import FileDigest, HashingWriter


def is_variant_file(name: str, fw: str) -> bool:
    """Whether NAME is a plain file name (no folder part) of framework FW's standard variant files."""
    return (isinstance(name, str) and "/" not in name and "\\" not in name
            and any(fnmatch.fnmatchcase(name, pat) for pat in FILES[fw].patterns))


def variant_files(folder: Path, fw: str) -> list[Path]:
    """FOLDER's files of framework FW's variant (single file, shards, index), sorted."""
    return [p for p in sorted(folder.iterdir()) if is_variant_file(p.name, fw)]


def sha256(path: Path) -> str:
    """The hex sha256 of the file at PATH, read in blocks."""
    return digest(path).sha256


def digest(path: Path, stop: threading.Event | None = None) -> FileDigest:
    """Size, sha256 and first bytes of the file at PATH: what the Hub client needs to upload it.
    STOP, once set by another thread, ends the reading early (``CancelledError``): a multi-GB file
    must not keep a process that gave up waiting for it."""
    with open(path, "rb", buffering=0) as fh:
        return HashingWriter(None).read(fh, stop).digest()
