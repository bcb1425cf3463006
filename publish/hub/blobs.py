"""Content-addressed file store: LFS objects by sha256, regular files by git blob sha1.

Every write goes to a temporary file under `tmp/`, is hashed (while written, or an upload right
after, from the page cache), fsynced and only then renamed into place, so a crash never leaves a
half object under its final name.

>>> import tempfile, pathlib
>>> store = BlobStore(pathlib.Path(tempfile.mkdtemp()))
>>> oid, size = store.put_regular(b"hello\\n")
>>> (oid, size, store.regular_path(oid).read_bytes())
('ce013625030ba8dba906f756967f9e9ca394464a', 6, b'hello\\n')
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

from tensorferry.converters.formats.digest import HashingWriter

CHUNK = 1 << 20
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
SHA1_RE = re.compile(r"^[0-9a-f]{40}$")


def git_blob_sha1(data: bytes) -> str:
    """The id git gives a file's content (`git hash-object`)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(oid: str, size: int) -> bytes:
    """The git-lfs pointer file the Hub stores in git in place of the real content."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n".encode()


class BlobStore:
    """Two fan-out directories under `root/objects`, plus `root/tmp` for writes in flight."""

    def __init__(self, root: Path, durable: bool = True) -> None:
        self.root = Path(root)
        self.durable = durable  # fsync before anything refers to a blob (False: `hub serve --no-fsync`)
        self.tmp = self.root / "tmp"
        for d in (self.tmp, self.root / "objects" / "lfs", self.root / "objects" / "git"):
            d.mkdir(parents=True, exist_ok=True)

    def clean_tmp(self) -> int:
        """Drop writes a crash left behind; called at start-up, before any request."""
        n = 0
        for entry in self.tmp.iterdir():
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            n += 1
        return n

    def lfs_path(self, oid: str) -> Path:
        if not SHA256_RE.match(oid):
            raise ValueError(f"not a sha256: {oid!r}")
        return self.root / "objects" / "lfs" / oid[:2] / oid[2:4] / oid

    def regular_path(self, sha1: str) -> Path:
        if not SHA1_RE.match(sha1):
            raise ValueError(f"not a sha1: {sha1!r}")
        return self.root / "objects" / "git" / sha1[:2] / sha1[2:4] / sha1

    def has_lfs(self, oid: str) -> bool:
        return SHA256_RE.match(oid) is not None and self.lfs_path(oid).is_file()

    def tmp_file(self, suffix: str = "") -> tuple[int, Path]:
        fd, name = tempfile.mkstemp(dir=self.tmp, suffix=suffix)
        return fd, Path(name)

    def tmp_dir(self) -> Path:
        return Path(tempfile.mkdtemp(dir=self.tmp))

    def _publish(self, tmp: Path, final: Path) -> None:
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists():
            tmp.unlink(missing_ok=True)  # same hash, same bytes: keep the existing copy
            return
        os.replace(tmp, final)
        if self.durable:
            _fsync_dir(final.parent)

    def put_regular(self, data: bytes) -> tuple[str, int]:
        """Store a small regular file; returns (git blob sha1, size)."""
        sha1 = git_blob_sha1(data)
        final = self.regular_path(sha1)
        if not final.exists():
            fd, tmp = self.tmp_file()
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                if self.durable:
                    os.fsync(f.fileno())
            self._publish(tmp, final)
        return sha1, len(data)

    def publish_lfs(self, tmp: Path, oid: str) -> Path:
        """Move a fully written and verified temporary file to its sha256 name."""
        final = self.lfs_path(oid)
        self._publish(tmp, final)
        return final

    def hash_and_sync(self, path: Path) -> tuple[str, int]:
        """(sha256, size) of a file written in pieces, made durable before anything refers to it."""
        # The disk writes while the hash reads the page cache: the client waits for the longer of the
        # two, not their sum (a third less for a large object).  The pool waits for the fsync whatever
        # happens, and .result() raises its error: an object not made durable is never referred to.
        with open(path, "rb", buffering=0) as f, ThreadPoolExecutor(1, thread_name_prefix="hub-fsync") as pool:
            synced = pool.submit(os.fsync, f.fileno()) if self.durable else None
            hashing = HashingWriter(None).read(f)
            if synced is not None:
                synced.result()
        return hashing.digest().sha256, hashing.size

    def open_content(self, sha1: str, lfs_oid: str | None) -> Path:
        """Path of a file's real bytes, whether stored as LFS or regular."""
        return self.lfs_path(lfs_oid) if lfs_oid else self.regular_path(sha1)

    @staticmethod
    def iter_range(path: Path, start: int, end: int) -> Iterator[bytes]:
        """Yield bytes [start, end] inclusive in 1 MiB chunks: memory does not grow with the file."""
        with open(path, "rb") as f:
            f.seek(start)
            left = end - start + 1
            while left > 0:
                chunk = f.read(min(CHUNK, left))
                if not chunk:
                    break
                left -= len(chunk)
                yield chunk


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
