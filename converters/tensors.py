"""What the writers write: each target tensor computed once, a step ahead, within a memory budget.

A conversion writes every target at once, one thread per target format.  TF and Flax hold the same
Dense and Conv kernels, transposed the same way: a tensor computed for one writer is kept until
every writer that needs it has taken it, so each distinct layout is computed once.  Each writer's
next few tensors are computed on the other core while the current one is written (numpy copies and
file writes release the GIL).  ``budget`` bounds the computed copies alive at once — the ones writers
hold and the ones kept for later: a tensor is kept or computed ahead only when it fits, otherwise
it is computed when its writer asks, so memory stays near twice the largest tensor.

>>> import numpy as np
>>> calls = []
>>> def compute(key):
...     calls.append(key)
...     return np.full(3, ord(key))
>>> t = Tensors(compute, {"tf": ["k", "b"], "flax": ["k"]}, sizes={"k": 24, "b": 24}, budget=1 << 20)
>>> kernel = t.get("tf", "k")
>>> t.get("flax", "k") is kernel, chr(t.get("tf", "b")[0])
(True, 'b')
>>> t.close()
>>> sorted(calls)                         # each computed once, "b" while "k" was being written
['b', 'k']
"""
from __future__ import annotations

import ctypes
import functools
import threading
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np


# Tensors computed ahead of each writer.  One was not enough: the writers then waited for the
# transposes about half the time (1.07 GiB BERT-large PT → TF + Flax: 1.43 s → 1.10 s in-process).
LOOKAHEAD = 4


class Cancelled(Exception):
    """Another writer failed: this one stops at its next tensor."""


class Tensors:
    """Tensors by key for several writers, each of which announced the keys it will ask for, in order."""

    def __init__(self, compute: Callable[[Hashable], np.ndarray], orders: dict[str, Sequence[Hashable]],
                 sizes: dict[Hashable, int], budget: int, ahead: bool = True) -> None:
        self._compute = compute
        self._orders = {w: list(keys) for w, keys in orders.items()}
        self._cursor = dict.fromkeys(orders, 0)
        self._pending = Counter(k for keys in orders.values() for k in keys)  # requests still to come
        self._sizes = sizes  # bytes a computed copy takes (0 for views of the source)
        self._budget = budget
        self._ready: dict[Hashable, Future] = {}  # computed or being computed, kept for a later request
        self._held: dict[Hashable, int] = {}  # their bytes, counted against the budget
        self._current: dict[str, Hashable] = {}  # what each writer holds until it asks for the next
        self._lock = threading.Lock()
        self._cancelled = False
        self._pool = ThreadPoolExecutor(max_workers=len(orders), thread_name_prefix="tensorferry-ahead") if ahead else None

    def get(self, writer: str, key: Hashable) -> np.ndarray:
        """The tensor for KEY; WRITER's next announced tensor starts computing meanwhile."""
        with self._lock:
            if self._cancelled:
                raise Cancelled(writer)
            self._current.pop(writer, None)  # asking for the next: it is done with the last one
            order, i = self._orders[writer], self._cursor[writer]
            if i < len(order) and order[i] == key:
                self._cursor[writer] = i + 1
            future, mine = self._ready.get(key), None
            if future is None:  # nobody computed it yet: this thread does
                future = mine = Future()
                future.set_running_or_notify_cancel()
                self._keep(key, future)
            self._pending[key] -= 1
            if self._pending[key] <= 0:  # the last request: nothing more to keep it for
                self._ready.pop(key, None)
                self._held.pop(key, None)
            self._current[writer] = key
            self._prefetch(writer)
        if mine is not None:
            self._run(key, mine)
        return future.result()

    def cancel(self) -> None:
        """Make every writer's next ``get`` raise ``Cancelled`` (a writer failed)."""
        with self._lock:
            self._cancelled = True

    def close(self) -> None:
        """Stop computing ahead; a writer still waiting for a tensor gets ``Cancelled``."""
        with self._lock:
            self._cancelled = True
            waiting = list(self._ready.values())
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        for future in waiting:
            if not future.done():
                future.set_exception(Cancelled("conversion stopped"))
        self._ready.clear()
        self._held.clear()
        self._current.clear()

    # inside the lock -------------------------------------------------------------------------------
    def _alive(self) -> int:
        """Bytes of computed copies alive: held by writers (each tensor once) or kept for later."""
        keys = set(self._held) | set(self._current.values())
        return sum(self._sizes.get(k, 0) for k in keys)

    def _keep(self, key: Hashable, future: Future) -> None:
        """Keep FUTURE for the requests still to come, if the budget allows; else it is recomputed then."""
        if self._pending[key] > 1 and self._alive() + self._sizes.get(key, 0) <= self._budget:
            self._ready[key] = future
            self._held[key] = self._sizes.get(key, 0)

    def _prefetch(self, writer: str) -> None:
        if self._pool is None:
            return
        order, i = self._orders[writer], self._cursor[writer]
        for j, key in enumerate(order[i:i + LOOKAHEAD]):
            if key in self._ready:
                continue
            # past the next tensor, only half the budget: the rest stays free for tensors kept for the
            # other writer (kept ones are computed once; crowded out, they would be computed twice)
            room = self._budget if j == 0 else self._budget // 2
            if key == self._current.get(writer) or self._alive() + self._sizes.get(key, 0) > room:
                return  # the one it is taking (another output of it), or no room: computed when asked
            future = Future()
            self._ready[key] = future
            self._held[key] = self._sizes.get(key, 0)
            future.set_running_or_notify_cancel()
            self._pool.submit(self._run, key, future)

    # outside the lock ------------------------------------------------------------------------------
    def _run(self, key: Hashable, future: Future) -> None:
        try:
            future.set_result(self._compute(key))
        except BaseException as e:  # noqa: BLE001 - handed to whichever writer asks for the tensor
            future.set_exception(e)


@functools.cache
def return_freed_memory() -> bool:
    """Make a freed tensor's memory go back to the system at once (glibc); True if it took.

    glibc raises its mmap threshold after the first large free, and from then on keeps freed
    tensors in per-thread arenas: with several writer threads the process would hold a few
    tensors more than it uses.  A fixed 1 MiB threshold maps every tensor on its own.

    >>> isinstance(return_freed_memory(), bool)
    True
    """
    try:
        return bool(ctypes.CDLL("libc.so.6").mallopt(-3, 1 << 20))  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        return False  # not glibc: its allocator decides
