"""File codecs: safetensors, Keras-2 HDF5, Flax msgpack and (read-only) PyTorch pickles.

The codecs know files, not layouts: they read and write named numpy arrays, streaming one
tensor at a time.  ``atomic_outputs`` makes every write all-or-nothing.
"""
from __future__ import annotations

import contextlib
import fnmatch
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from typing import BinaryIO
from pathlib import Path

from ..constants import CONFIG, FILES, KERAS3_PATTERNS, NNX_DIR, Files
from ..errors import InputError

PARTIAL = ".partial"
# `.NAME.PID-RANDOM.partial`: the writer's pid tells a dead run's leftovers from a live run's files.
_PARTIAL = re.compile(r"\.(?P<name>.+)\.(?:(?P<pid>\d+)-)?[A-Za-z0-9_]+\.partial")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _alive(pid: str | None) -> bool:
    if pid is None:
        return False  # written before partial names carried a pid
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


_HDF5_ERRNO = re.compile(r"errno = (\d+)")  # h5py reports HDF5's errno inside its message


def _reason(e: Exception) -> str:
    if getattr(e, "strerror", None):
        return e.strerror
    m = _HDF5_ERRNO.search(str(e))
    return os.strerror(int(m.group(1))) if m else str(e)


class AtomicOutputs:
    """Temporary paths that become the final ones only when every file is complete.

    ``prepare(folder, formats)`` readies the output folder: it is created (and removed again if
    the run fails), partial files of dead runs are deleted, and files of the formats being
    written that this run will not rewrite (``tf_model.h5`` when shards come, old shards when a
    single file comes) are deleted once the new files are in place.  Only names matching the
    formats' own patterns are ever deleted.
    """

    def __init__(self) -> None:
        self._pending: list[tuple[Path, Path]] = []
        self._stale: list[Path] = []
        self._made: list[Path] = []
        self._folders: list[tuple[Path, Path]] = []
        self.current: Path | None = None  # the final name being written, for error messages

    def prepare(self, folder: str | os.PathLike, formats: Sequence[Files] = ()) -> Path:
        """Create ``folder`` if needed, remove dead runs' partial files, note stale files of ``formats``.

        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (d / "tf_model.h5").write_text("old"), (d / ".tf_model.h5.999999999-x.partial").write_text("dead")
        >>> with atomic_outputs() as out:
        ...     _ = out.prepare(d, [FILES["tf"]])
        ...     _ = out.path(d / "tf_model-00001-of-00001.h5").write_text("new")
        >>> sorted(p.name for p in d.iterdir())
        ['tf_model-00001-of-00001.h5']
        """
        folder = Path(folder)
        self._mkdir(folder)
        if not os.access(folder, os.W_OK):
            raise InputError(folder, "output folder is not writable")
        ours = [n for f in FILES.values() for n in f.patterns] + [CONFIG] + KERAS3_PATTERNS
        for p in folder.glob(f".*{PARTIAL}"):
            m = _PARTIAL.fullmatch(p.name)
            if not m or _alive(m["pid"]):
                continue
            if any(fnmatch.fnmatchcase(m["name"], n) for n in ours) and p.is_file():
                p.unlink(missing_ok=True)
            elif m["name"] == NNX_DIR and p.is_dir() and not p.is_symlink():  # an Orbax folder a killed run left
                shutil.rmtree(p, ignore_errors=True)
        self._stale = [p for f in formats for pattern in f.patterns for p in sorted(folder.glob(pattern))
                       if p.is_symlink() or p.is_file()]
        return folder

    def _mkdir(self, folder: Path) -> None:
        missing = [p for p in (folder, *folder.parents) if not os.path.lexists(p)][::-1]
        blocking = next((p for p in (folder, *folder.parents) if os.path.lexists(p)), None)
        if blocking is not None and not blocking.is_dir():
            raise InputError(blocking, f"is a file, not a folder: cannot write {folder}")
        for p in missing:
            try:
                p.mkdir()
            except FileExistsError:
                continue
            except OSError as e:
                raise InputError(p, f"cannot create the output folder: {_reason(e)}") from None
            self._made.append(p)

    def path(self, final: str | os.PathLike) -> Path:
        """A temporary path in ``final``'s folder (same filesystem, so the rename is atomic)."""
        final = Path(final)
        self._mkdir(final.parent)
        self.current = final
        fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.{os.getpid()}-", suffix=PARTIAL, dir=final.parent)
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs are ordinary files
        self._pending.append((Path(tmp), final))
        return Path(tmp)

    def folder(self, final: str | os.PathLike) -> Path:
        """A temporary folder path (not created) in ``final``'s parent, renamed to ``final`` at commit
        (an Orbax checkpoint is a folder); a previous folder of that name is replaced then."""
        final = Path(final)
        self._mkdir(final.parent)
        self.current = final
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.{os.getpid()}-", suffix=PARTIAL, dir=final.parent))
        tmp.rmdir()  # the writer creates it (Orbax refuses an existing folder)
        self._folders.append((tmp, final))
        return tmp

    def commit(self) -> None:
        for tmp, final in self._folders:
            old = final.with_name(f".{final.name}.{os.getpid()}.old{PARTIAL}")
            if final.is_dir() and not final.is_symlink():
                os.replace(final, old)
            elif os.path.lexists(final):
                raise InputError(final, "is not a folder: tensorferry will not replace it with one")
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        self._folders.clear()
        for _, final in self._pending:
            if final.is_dir() and not final.is_symlink():
                raise InputError(final, "is a folder: tensorferry will not replace it with a file")
        finals = {final for _, final in self._pending}
        while self._pending:
            tmp, final = self._pending[0]
            self.current = final
            os.replace(tmp, final)
            self._pending.pop(0)
        for stale in self._stale:  # after the renames: a complete set of files exists at every moment
            if stale not in finals:
                self.current = stale
                stale.unlink(missing_ok=True)
        self._stale, self._made = [], []

    def discard(self) -> None:
        for tmp, _ in self._folders:
            shutil.rmtree(tmp, ignore_errors=True)
        self._folders.clear()
        for tmp, _ in self._pending:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        self._pending.clear()
        for folder in reversed(self._made):  # folders this run created, if still empty
            with contextlib.suppress(OSError):
                folder.rmdir()
        self._made.clear()


@contextlib.contextmanager
def atomic_outputs() -> Iterator[AtomicOutputs]:
    """Write several files so that either all appear under their final names or none does.

    A filesystem failure (disk full, read-only, permissions) becomes an ``InputError`` naming
    the file being written.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_outputs() as out:
    ...     _ = out.path(d / "a.txt").write_text("hi")
    >>> (d / "a.txt").read_text()
    'hi'
    """
    outputs = AtomicOutputs()
    try:
        yield outputs
        outputs.commit()
    except OSError as e:
        outputs.discard()
        raise InputError(outputs.current or e.filename or "output", f"cannot write: {_reason(e)}") from None
    except RuntimeError as e:
        outputs.discard()
        if _HDF5_ERRNO.search(str(e)):  # HDF5 reports a failed flush on close (disk full) as RuntimeError
            raise InputError(outputs.current or "output", f"cannot write: {_reason(e)}") from None
        raise
    except BaseException:
        outputs.discard()
        raise


@contextlib.contextmanager
def open_for_writing(path: str | os.PathLike, buffering: int = -1) -> Iterator[BinaryIO]:
    """PATH opened to be written from its start, without ``O_TRUNC``; cut to what was written at the end.

    ext4 (``auto_da_alloc``) starts writing back a file that was truncated to zero as soon as it
    is closed, and the closing thread pays for it: about 0.4 s per GiB, as much as the writes
    themselves.  Outputs are fresh, empty temp files: nothing needs truncating first, and a longer
    file already at PATH is cut to its new length after writing (a shrink, which ext4 leaves alone).

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "f.bin"
    >>> _ = p.write_bytes(b"a much longer old file")
    >>> with open_for_writing(p) as fh:
    ...     _ = fh.write(b"new")
    >>> p.read_bytes()
    b'new'
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o666)  # Python makes it close-on-exec itself
    with open(fd, "wb", buffering=buffering) as fh:  # an fd is not reopened: "wb" does not truncate it
        yield fh
        fh.flush()
        if os.fstat(fd).st_size > (end := fh.tell()):
            os.ftruncate(fd, end)


def raw_bytes(arr) -> memoryview:
    """The C-order bytes of an array without another copy when it is already contiguous.

    Works for bfloat16 too, whose dtype the buffer protocol does not know.

    >>> import numpy as np
    >>> bytes(raw_bytes(np.array([[1, 2], [3, 4]], np.uint8).T))
    b'\\x01\\x03\\x02\\x04'
    """
    import numpy as np

    from ..ops import contiguous

    flat = contiguous(np.asarray(arr)).reshape(-1)
    return memoryview(flat.view(np.uint8))
