"""Shared by the benchmark scripts: run a command and sample its anonymous memory; CPU seconds used."""
from __future__ import annotations

import os
import resource
import subprocess
import threading
import time
from pathlib import Path


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


def cpu_seconds(*pids: int, own: bool = True) -> float:
    """CPU seconds (user + system) used so far by this process (unless not OWN), its reaped children
    and the live processes PIDS (a server started beside the measured run)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = children.ru_utime + children.ru_stime
    if own:
        me = resource.getrusage(resource.RUSAGE_SELF)
        total += me.ru_utime + me.ru_stime
    return total + sum(process_cpu(pid) for pid in pids)


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by the live process PID, its threads included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_ticks() -> list[int]:
    """The machine's CPU time so far by kind (/proc/stat: user nice system idle iowait irq softirq steal)."""
    with open("/proc/stat") as fh:
        return [int(x) for x in fh.readline().split()[1:9]]


def machine_share(before: list[int], after: list[int]) -> dict[str, float]:
    """Shares of all cores' time between two ``machine_ticks``: busy (any process or the kernel's own
    threads: page-cache writeback, softirqs), iowait and idle.

    >>> machine_share([0] * 8, [30, 0, 20, 40, 10, 0, 0, 0])
    {'busy': 0.5, 'iowait': 0.1, 'idle': 0.4}
    """
    d = [b - a for a, b in zip(before, after)]
    total = sum(d) or 1
    return {"busy": (total - d[3] - d[4]) / total, "iowait": d[4] / total, "idle": d[3] / total}


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


def bert_like_specs(gib: float) -> list:
    """A BERT-large-shaped encoder's tensors (hidden 1024, MLP 4096), with as many layers as fit ``gib``."""
    import numpy as np

    h, ff, vocab = 1024, 4096, 32000
    f32 = np.dtype("float32")
    specs = [("embeddings.word_embeddings.weight", (vocab, h), f32), ("embeddings.position_embeddings.weight", (512, h), f32),
             ("embeddings.token_type_embeddings.weight", (2, h), f32), ("embeddings.LayerNorm.weight", (h,), f32),
             ("embeddings.LayerNorm.bias", (h,), f32)]
    per_layer = (4 * h * h + 2 * h * ff) * 4
    layers = max(1, int((gib * 2**30 - vocab * h * 4) // per_layer))
    for i in range(layers):
        p = f"encoder.layer.{i}."
        for name in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
            specs += [(p + name + ".weight", (h, h), f32), (p + name + ".bias", (h,), f32)]
        specs += [(p + "attention.output.LayerNorm.weight", (h,), f32), (p + "attention.output.LayerNorm.bias", (h,), f32),
                  (p + "intermediate.dense.weight", (ff, h), f32), (p + "intermediate.dense.bias", (ff,), f32),
                  (p + "output.dense.weight", (h, ff), f32), (p + "output.dense.bias", (h,), f32),
                  (p + "output.LayerNorm.weight", (h,), f32), (p + "output.LayerNorm.bias", (h,), f32)]
    return specs
