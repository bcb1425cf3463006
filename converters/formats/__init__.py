"""File codecs: safetensors, Keras-2 HDF5, Flax msgpack and (read-only) PyTorch pickles.

The codecs know files, not layouts: they read and write named numpy arrays, streaming one
tensor at a time.  ``atomic_outputs`` makes every write all-or-nothing.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class AtomicOutputs:
    """Temporary paths that become the final ones only when every file is complete."""

    def __init__(self) -> None:
        self._pending: list[tuple[Path, Path]] = []

    def path(self, final: str | os.PathLike) -> Path:
        """A temporary path in ``final``'s folder (same filesystem, so the rename is atomic)."""
        final = Path(final)
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent)
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs are ordinary files
        self._pending.append((Path(tmp), final))
        return Path(tmp)

    def commit(self) -> None:
        for tmp, final in self._pending:
            os.replace(tmp, final)
        self._pending.clear()

    def discard(self) -> None:
        for tmp, _ in self._pending:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        self._pending.clear()


@contextlib.contextmanager
def atomic_outputs() -> Iterator[AtomicOutputs]:
    """Write several files so that either all appear under their final names or none does.

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
    except BaseException:
        outputs.discard()
        raise
    outputs.commit()


def raw_bytes(arr) -> memoryview:
    """The C-order bytes of an array without another copy when it is already contiguous.

    Works for bfloat16 too, whose dtype the buffer protocol does not know.
    """
    import numpy as np

    flat = np.ascontiguousarray(arr).reshape(-1)
    return memoryview(flat.view(np.uint8))
