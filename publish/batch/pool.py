"""Where repo pipelines run: local worker processes within a memory budget, or Dask distributed.

Both executors take tasks with a memory estimate, report each finished ``Outcome`` and pass the
workers' progress messages to the coordinator (which alone writes the journal):

* ``LocalPool``: ``--workers N`` spawned processes; a task starts only when the estimates of the
  running tasks plus its own fit in ``--max-memory`` (a task larger than the budget runs alone).
* ``DaskPool``: a task per repo on a ``distributed`` cluster (``--scheduler tcp://…``) or a
  ``LocalCluster`` (``--dask local``); the estimate is the task's ``MEMORY`` resource when the
  workers declare one (``dask worker --resources MEMORY=8e9``), so Dask keeps each worker in budget.

>>> fits(100, [60], 200, 2), fits(100, [150], 200, 2), fits(500, [], 200, 2), fits(1, [1, 1], 200, 2)
(True, False, True, False)
>>> available_memory() > 0
True
"""
from __future__ import annotations

import queue as queue_mod
import time
from collections.abc import Callable, Iterator
from typing import Any

from .work import TOPIC, Outcome, RepoTask, init_worker, run_task

Event = dict  # {"repo_id", "state", ...} from work.emit


def available_memory() -> int:
    """Bytes of RAM available now (``MemAvailable``), the default ``--max-memory`` budget's base."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import os

    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def fits(need: int, running: list[int], budget: int, workers: int) -> bool:
    """Whether a task needing NEED bytes may start beside RUNNING ones (a lone task always may)."""
    if len(running) >= workers:
        return False
    return not running or sum(running) + need <= budget


class LocalPool:
    """``workers`` spawned processes (spawn: no forked HTTP clients or locks), the budget kept here.

    A worker that dies (killed, out of memory) breaks a ``ProcessPoolExecutor`` and every task on it:
    the pool is then rebuilt, the repo whose worker died is failed, and the tasks the executor
    terminated with it are run again (a task whose worker is unknown is run again at most twice).
    """

    REQUEUES = 2

    def __init__(self, workers: int, budget: int) -> None:
        import multiprocessing

        self.workers, self.budget = max(1, workers), budget
        self.ctx = multiprocessing.get_context("spawn")
        self.events = self.ctx.Queue()
        self.pids: dict[str, int] = {}  # repo → pid of the worker running it (from its "converting" event)
        self.procs: dict[int, Any] = {}  # pid → the executor's Process, kept to read exit codes after a break
        self.executor = self._executor()

    def _executor(self) -> Any:
        from concurrent.futures import ProcessPoolExecutor

        return ProcessPoolExecutor(self.workers, mp_context=self.ctx, initializer=init_worker, initargs=(self.events,))

    def run(self, tasks: list[tuple[RepoTask, int]], on_event: Callable[[Event], None],
            on_start: Callable[[RepoTask], None]) -> Iterator[Outcome]:
        """Run TASKS (task, memory estimate) in order as the budget allows; yield each outcome as it finishes."""
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        pending, running = list(tasks), {}
        requeued: dict[str, int] = {}
        while pending or running:
            broken = False
            while pending and fits(pending[0][1], [n for n, _ in running.values()], self.budget, self.workers):
                task, need = pending[0]
                try:
                    future = self.executor.submit(run_task, task)
                except BrokenProcessPool:  # it broke since the last look: its running tasks say how below
                    broken = True
                    break
                pending.pop(0)
                self.procs.update(getattr(self.executor, "_processes", None) or {})
                on_start(task)
                running[future] = (need, task)
            done, _ = wait(list(running), timeout=0.2, return_when=FIRST_COMPLETED)
            self.procs.update(getattr(self.executor, "_processes", None) or {})
            self._drain(on_event)
            if broken or any(isinstance(f.exception(), BrokenProcessPool) for f in done):
                wait(list(running), timeout=30)  # a broken pool fails every task it held, all at once
                self._drain(on_event)
                killed = self._killed()
                for future, (need, task) in list(running.items()):
                    if not future.done() or not isinstance(future.exception(), BrokenProcessPool):
                        continue
                    del running[future]
                    pid = self.pids.pop(task.repo_id, None)
                    if pid in killed or (pid is None and requeued.get(task.repo_id, 0) >= self.REQUEUES):
                        yield Outcome(task.repo_id, "failed", exit_code=1,
                                      error=f"worker process died ({killed.get(pid, 'unknown cause')}; out of memory?)")
                    else:  # terminated with the pool, through no fault of its own: run it again
                        requeued[task.repo_id] = requeued.get(task.repo_id, 0) + (pid is None)
                        pending.insert(0, (task, need))
                self.executor.shutdown(wait=True, cancel_futures=True)
                self.executor, self.procs = self._executor(), {}
                done = {f for f in done if f in running}
            for future in done:
                yield _outcome(future, running.pop(future)[1].repo_id)
        self._drain(on_event)

    def _killed(self) -> dict[int, str]:
        """Workers of the broken pool that died of something other than the executor's own SIGTERM."""
        import signal

        deadline = time.monotonic() + 10
        while any(p.exitcode is None for p in self.procs.values()) and time.monotonic() < deadline:
            time.sleep(0.05)
        out = {}
        for pid, p in self.procs.items():
            code = p.exitcode
            if code is not None and code not in (0, -signal.SIGTERM):
                out[pid] = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        return out

    def _drain(self, on_event: Callable[[Event], None]) -> None:
        _drain(self.events, on_event, self.pids)

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)


class DaskPool:
    """Repo tasks on a Dask cluster: a running scheduler's, or a ``LocalCluster`` started here."""

    def __init__(self, scheduler: str | None, workers: int, budget: int) -> None:
        from distributed import Client, LocalCluster

        self.cluster = None
        if scheduler is None:  # --dask local: one single-threaded process per worker, the budget split among them
            self.cluster = LocalCluster(n_workers=max(1, workers), threads_per_worker=1, processes=True,
                                        dashboard_address=None, resources={"MEMORY": budget // max(1, workers)})
            self.client = Client(self.cluster)
        else:
            self.client = Client(scheduler)
        self.events: queue_mod.Queue = queue_mod.Queue()
        self.client.subscribe_topic(TOPIC, lambda event: self.events.put(event[1]))
        workers_info = self.client.scheduler_info().get("workers", {}).values()
        memory = [w.get("resources", {}).get("MEMORY") for w in workers_info]
        # Without a MEMORY resource on every worker a resource request would never be scheduled.
        self.capacity = min(memory) if memory and all(memory) else None

    def run(self, tasks: list[tuple[RepoTask, int]], on_event: Callable[[Event], None],
            on_start: Callable[[RepoTask], None]) -> Iterator[Outcome]:
        from distributed import as_completed

        futures = []
        for task, need in tasks:
            task.dask = True
            on_start(task)
            resources = {"MEMORY": min(need, self.capacity)} if self.capacity else None
            futures.append(self.client.submit(run_task, task, key=f"tensorferry-batch-{task.repo_id}-{task.run}",
                                              pure=False, resources=resources, retries=0))
        for future in as_completed(futures):
            self._drain(on_event)
            try:
                yield future.result()
            except Exception as e:  # noqa: BLE001 - a lost worker or a task that could not run: that repo failed
                task = tasks[futures.index(future)][0]
                yield Outcome(task.repo_id, "failed", error=f"Dask: {type(e).__name__}: {e}", exit_code=1)
        self._drain(on_event)

    def _drain(self, on_event: Callable[[Event], None]) -> None:
        _drain(self.events, on_event)

    def close(self) -> None:
        try:
            self.client.unsubscribe_topic(TOPIC)
        finally:
            self.client.close()
            if self.cluster is not None:
                self.cluster.close()


def _drain(events: Any, on_event: Callable[[Event], None], pids: dict[str, int] | None = None) -> None:
    """Pass every waiting progress message to ON_EVENT; note each repo's worker pid in PIDS."""
    while True:
        try:
            event = events.get_nowait()
        except queue_mod.Empty:
            return
        if pids is not None and "pid" in event:
            pids[event["repo_id"]] = event["pid"]
        on_event(event)


def _outcome(future: Any, repo_id: str) -> Outcome:
    try:
        return future.result()
    except Exception as e:  # noqa: BLE001 - a worker process died (out of memory, killed): that repo failed
        return Outcome(repo_id, "failed", error=f"worker died: {type(e).__name__}: {e}", exit_code=1)
