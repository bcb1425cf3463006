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
import os
import re
import threading
from pathlib import Path

from tensorferry.converters.constants import FILES
from tensorferry.converters.formats.digest import SAMPLE, FileDigest, HashingWriter

CACHE_REPO_PREFIXES = ("models--", "datasets--", "spaces--")  # huggingface_hub's cache folders
_SHA256 = re.compile(r"[0-9a-f]{64}")


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


def cached_digest(path: Path) -> FileDigest | None:
    """The digest of an LFS file in the HF cache, read from its name: huggingface_hub stores it as
    ``models--…/blobs/<sha256>`` (the Hub's ``X-Linked-Etag``), so a multi-GB source republished from
    the cache is not read again.  None for any other file (hash it with ``digest``).  It trusts the
    name, as huggingface_hub does: never use it to check a download (``digest`` reads the bytes).

    >>> import tempfile
    >>> blob = Path(tempfile.mkdtemp()) / "models--acme--tiny" / "blobs" / ("ab" * 32)
    >>> blob.parent.mkdir(parents=True); _ = blob.write_bytes(b"weights")
    >>> link = blob.parent.parent / "model.safetensors"; link.symlink_to(blob)
    >>> cached_digest(link)
    FileDigest(size=7, sha256='abababababababababababababababababababababababababababababababab', sample=b'weights')
    >>> cached_digest(blob.parent.parent / "model.safetensors.copy") is None  # not in a cache's blobs
    True
    """
    target = Path(path).resolve()
    repo = target.parent.parent.name
    if target.parent.name != "blobs" or not repo.startswith(CACHE_REPO_PREFIXES) or not _SHA256.fullmatch(target.name):
        return None
    with open(target, "rb") as fh:
        sample = fh.read(SAMPLE)
        size = os.fstat(fh.fileno()).st_size
    return FileDigest(size, target.name, sample)
