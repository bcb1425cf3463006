"""The local Hub's connection limits: timeouts and the connection cap (``tensorferry hub serve`` flags).

>>> Limits().header_timeout, Limits().max_connections
(10.0, 1000)
"""
from __future__ import annotations

import resource
from dataclasses import dataclass

FD_RESERVE = 128  # descriptors kept for SQLite, blobs, spools and the listening socket


@dataclass(frozen=True)
class Limits:
    """Timeouts (seconds) and the connection cap; `tensorferry hub serve` flags of the same names."""

    header_timeout: float = 10.0
    idle_timeout: float = 60.0
    max_connections: int = 1000

    def effective_max_connections(self) -> int:
        """`max_connections`, lowered to fit the process's file descriptor limit (raised first)."""
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = self.max_connections + FD_RESERVE
        if soft < want and (hard == resource.RLIM_INFINITY or soft < hard):
            soft = want if hard == resource.RLIM_INFINITY else min(want, hard)
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        return max(1, min(self.max_connections, soft - FD_RESERVE))
