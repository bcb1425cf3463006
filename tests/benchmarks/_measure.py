"""Shared by the benchmark scripts: run a command and sample its anonymous memory."""
from __future__ import annotations

import os
import subprocess
import threading
import time


def rss_anon_kib(pid: int) -> int:
    """RssAnon of one process in KiB (0 if it is gone): file-backed mmap pages do not count."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            with open(f"/proc/{p}/task/{p}/children") as fh:
                todo.extend(int(c) for c in fh.read().split())
        except (FileNotFoundError, ProcessLookupError):
            pass
    return out


def run(cmd: list[str], interval: float = 0.01, env: dict | None = None) -> tuple[float, int]:
    """Run ``cmd``; return (wall seconds, peak RssAnon in bytes summed over the process tree)."""
    peak = 0
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL)
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, sum(rss_anon_kib(p) for p in _tree(proc.pid)) * 1024)
            time.sleep(interval)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    code = proc.wait()
    elapsed = time.perf_counter() - started
    done.set()
    t.join()
    if code:
        raise SystemExit(f"{cmd[0]} failed with exit code {code}")
    return elapsed, peak
