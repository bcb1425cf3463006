"""Moves: how target tensors are computed from source tensors, planned from shapes alone.

Every edge of the converter graph (a format to canonical, canonical to a format) is a list of
moves.  A move reads one or more source tensors and yields one or more target tensors; most
are one tensor through an ``ops.Op``, recurrent layers are whole modules.

>>> import numpy as np
>>> m = single("fc.weight", (4, 3), np.dtype("float32"), "fc/kernel", ops.parse("T"), kind="linear", how="layout")
>>> m.targets
(('fc/kernel', (3, 4), dtype('float32')),)
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from . import ops
from .dtypes import same_bits

Spec = tuple[str, tuple[int, ...], np.dtype]


@dataclass(frozen=True)
class Move:
    sources: tuple[str, ...]
    targets: tuple[Spec, ...]
    fn: Callable[[Sequence[np.ndarray]], Sequence[np.ndarray]]
    op: str  # what happens, for --explain
    kind: str
    how: str  # map, structure, layout or heuristic
    why: str = ""

    def run(self, arrays: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        return list(self.fn(arrays))


def single(src: str, shape: tuple[int, ...], dtype: np.dtype, dst: str, op: ops.Op, *, kind: str, how: str, why: str = "") -> Move:
    """A one-tensor move through ``op``."""
    return Move((src,), ((dst, op.shape(tuple(shape)), np.dtype(dtype)),), lambda xs: [op.apply(xs[0])], str(op), kind, how, why)


def reorder_gates(x: np.ndarray, order: Sequence[int]) -> np.ndarray:
    """Reorder the equal gate blocks along axis 0, e.g. PyTorch GRU r,z,n → Keras z,r,n with (1, 0, 2).

    In the same order (LSTM's i,f,g,o in both) it is ``x`` itself: no copy before the transpose.

    >>> x = np.arange(6).reshape(3, 2)
    >>> reorder_gates(x, (1, 0, 2)).tolist(), reorder_gates(x, (0, 1, 2)) is x
    ([[2, 3], [0, 1], [4, 5]], True)
    """
    if tuple(order) == tuple(range(len(order))):
        return x
    blocks = np.split(x, len(order), axis=0)
    return np.concatenate([blocks[i] for i in order], axis=0)


def exact_sum(total: np.ndarray, a: np.ndarray | None, b: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, bool]:
    """Split a summed bias back into its two parts.

    With the side data (``a``, ``b``) and ``a + b`` still equal to ``total`` bit for bit, the
    originals come back; otherwise the sum goes to the first part and zeros to the second.
    """
    if a is not None and b is not None and a.shape == total.shape and same_bits(a + b, np.asarray(total)):
        return np.asarray(a), np.asarray(b), True
    return np.asarray(total), np.zeros_like(total), False
