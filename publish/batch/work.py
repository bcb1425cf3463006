"""One repo's pipeline, run in a worker process or on a Dask worker: download the source variant,
convert, verify, re-check the PR list, then one PR (or one commit) — ``publish`` does the work.

``run_task`` never raises for the repo's own problems: it returns an ``Outcome`` (pushed, skipped or
failed, with the reason or error), so one bad repo never stops the run.  A Hub failure that outlived
``call``'s retries is retried for the whole repo with exponential backoff; bad input and failed
verifications are not (they would fail again).  Progress (``converting``, ``verified``) goes to the
coordinator through ``emit``: a multiprocessing queue for local workers, Dask events on a cluster.

>>> RepoTask("acme/a", "a" * 40, "r1", "pt", ["tf"], "http://127.0.0.1:1", token="hf_secretsecret")
RepoTask(repo_id='acme/a', head='aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', run='r1', missing=['tf'], token=<set>)
>>> slug("acme/bert-tiny")
'acme--bert-tiny'
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .plan import marker

PROGRESS_FROM = 64 * 2**20  # repos with more source bytes send conversion progress (every PROGRESS_EVERY s)
PROGRESS_EVERY = 1.0
TOPIC = "tensorferry-batch"  # Dask event topic of the workers' progress messages
_queue: Any = None  # set in local worker processes by init_worker
_dask = False


@dataclass
class RepoTask:
    """Everything a worker needs for one repo (the token is never shown in its repr)."""

    repo_id: str
    head: str
    run: str
    source: str
    missing: list[str]
    endpoint: str
    token: str | None = field(default=None, repr=False)
    create_pr: bool = True
    verify: str = "auto"
    cache_dir: str | None = None
    work_dir: str | None = None
    max_shard_size: str = "5GB"
    retries: int = 2
    backoff: float = 1.0
    dask: bool = False
    size: int = 0  # bytes of the source variant: big repos report their conversion progress

    def __repr__(self) -> str:
        return (f"RepoTask(repo_id={self.repo_id!r}, head={self.head!r}, run={self.run!r}, missing={self.missing!r}, "
                f"token={'<set>' if self.token else None})")


@dataclass
class Outcome:
    """What happened to one repo: ``status`` is pushed, skipped or failed."""

    repo_id: str
    status: str
    url: str | None = None
    reason: str | None = None
    error: str | None = None
    exit_code: int = 0
    added: list[str] = field(default_factory=list)
    deltas: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    attempts: int = 1


class _Stop(Exception):
    """Raised by the race guard: do not commit; ``outcome`` says why."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.reason)
        self.outcome = outcome


def slug(repo_id: str) -> str:
    """A folder name for REPO_ID's scratch files."""
    return repo_id.replace("/", "--")


def init_worker(queue: Any) -> None:
    """Initializer of local worker processes: progress goes to QUEUE; die with the coordinator."""
    global _queue
    _queue = queue
    _die_with_parent()


def _die_with_parent() -> None:
    """On Linux, have the kernel kill this worker when the coordinator dies (``kill -9`` included), so no
    orphan goes on to commit while a resumed run re-plans the same repo."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - not Linux: the race guard still re-checks before committing
        pass


def emit(repo_id: str, state: str, **data: Any) -> None:
    """Tell the coordinator REPO_ID reached STATE (it writes the journal)."""
    message = {"repo_id": repo_id, "state": state, **data}
    if _queue is not None:
        _queue.put(message)
    elif _dask:
        from distributed import get_worker

        get_worker().log_event(TOPIC, message)


def run_task(task: RepoTask) -> Outcome:
    """Run one repo's pipeline with repo-level retries; returns its ``Outcome``, never raises for the repo."""
    global _dask
    from tensorferry.converters.errors import BranchMovedError, HubError, TensorferryError

    from ..hub_io import redact

    _dask = task.dask
    started = time.perf_counter()
    # No work_dir (a remote Dask worker: the coordinator's paths mean nothing here): a temp folder of its own.
    own = None if task.work_dir else Path(tempfile.mkdtemp(prefix="tensorferry-batch-"))
    scratch = Path(task.work_dir or own) / slug(task.repo_id)
    outcome = Outcome(task.repo_id, "failed")
    for attempt in range(max(0, task.retries) + 1):  # at least one attempt, whatever the caller passed
        shutil.rmtree(scratch, ignore_errors=True)  # half-done work of a killed run restarts from scratch
        scratch.mkdir(parents=True, exist_ok=True)
        emit(task.repo_id, "converting", attempts=attempt + 1, pid=os.getpid())  # the pid: which repo a dead worker held
        try:
            outcome = _publish(task, scratch)
        except _Stop as stop:
            outcome = stop.outcome
        except HubError as e:
            outcome = Outcome(task.repo_id, "failed", error=redact(e, task.token), exit_code=e.exit_code)
            # a moved head (committing.moved) needs a new plan, not a retry: a re-run re-plans it
            if attempt < task.retries and not isinstance(e, BranchMovedError):
                time.sleep(task.backoff * 2 ** attempt)
                continue
        except TensorferryError as e:  # bad input, failed verification: would fail the same way again
            outcome = Outcome(task.repo_id, "failed", error=redact(e, task.token), exit_code=e.exit_code)
        except Exception as e:  # noqa: BLE001 - a bug on one repo must not stop the run
            outcome = Outcome(task.repo_id, "failed", error=redact(f"internal error: {type(e).__name__}: {e}", task.token),
                              exit_code=1)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        outcome.attempts = attempt + 1
        break
    if own is not None:
        shutil.rmtree(own, ignore_errors=True)
    outcome.seconds = round(time.perf_counter() - started, 2)
    if outcome.error:
        outcome.error = _short_paths(outcome.error, task)
    return outcome


def _short_paths(text: str, task: RepoTask) -> str:
    """Name a file of the downloaded snapshot as ``repo@head:file``, not by its path in the HF cache.

    >>> t = RepoTask("acme/a", "0123456789" * 4, "r", "pt", ["tf"], "http://h")
    >>> _short_paths("/c/models--acme--a/snapshots/" + "0123456789" * 4 + "/model.safetensors: bad", t)
    'acme/a@01234567:model.safetensors: bad'
    """
    return re.sub(r"\S*/snapshots/[0-9a-f]{40}/", f"{task.repo_id}@{task.head[:8]}:", text)


def _publish(task: RepoTask, scratch: Path) -> Outcome:
    from ..hub_io import Hub
    from ..publisher import publish

    targets = list(dict.fromkeys([task.source, *task.missing]))
    deltas: dict[str, Any] = {}

    def guard(result: Any) -> None:
        nonlocal deltas
        deltas = max_deltas(result.verification)
        emit(task.repo_id, "verified", deltas=deltas)
        if task.create_pr:  # the race guard: a PR that appeared since planning (or our own, landed before a kill)
            _check_prs(Hub(task.endpoint, task.token), task, deltas)

    title = f"Add {', '.join(task.missing)} weights (tensorferry)"
    result = publish(task.repo_id, task.repo_id, to=targets, endpoint=task.endpoint, token=task.token,
                     create_pr=task.create_pr, commit_message=title, parent_commit=task.head,
                     source_revision=task.head, verify=task.verify, cache_dir=task.cache_dir, work_dir=scratch,
                     max_shard_size=task.max_shard_size, command=f"tensorferry batch {task.repo_id.split('/')[0]}",
                     quiet=True, before_commit=guard, description_marker=marker(task.head, task.run),
                     progress=_progress(task) if task.size >= PROGRESS_FROM else None)
    if result.no_op:
        return Outcome(task.repo_id, "skipped", reason="already holds identical files", deltas=deltas)
    return Outcome(task.repo_id, "pushed", url=result.pr_url or result.commit_url, added=list(task.missing),
                   deltas=deltas)


def _progress(task: RepoTask) -> Any:
    """A ``convert`` progress callback (source bytes converted) that tells the coordinator now and then."""
    state = {"bytes": 0, "sent": 0.0}

    def update(n: int) -> None:
        state["bytes"] += n
        if time.monotonic() - state["sent"] >= PROGRESS_EVERY:
            state["sent"] = time.monotonic()
            emit(task.repo_id, "progress", bytes=state["bytes"])

    return update


def _check_prs(hub: Any, task: RepoTask, deltas: dict[str, Any]) -> None:
    from .plan import tensorferry_prs

    for pr in tensorferry_prs(hub, task.repo_id):
        if pr.head != task.head:
            continue
        if pr.run == task.run:  # an earlier attempt of this run landed (its answer was lost, or we were killed)
            raise _Stop(Outcome(task.repo_id, "pushed", url=pr.url, added=list(task.missing), deltas=deltas,
                                reason="found this run's PR"))
        raise _Stop(Outcome(task.repo_id, "skipped", reason=f"tensorferry PR #{pr.num} appeared meanwhile"))


def max_deltas(verification: Any) -> dict[str, Any]:
    """Per converted framework: the largest output |Δ| where outputs were compared, else ``"weights only"``.

    >>> max_deltas(None)
    {}
    """
    if verification is None:
        return {}
    out: dict[str, Any] = {}
    for fw in verification.frameworks:
        check = verification.functional.get(fw)
        if check is not None and check.ran:
            values = [o.max_abs for o in check.outputs if o.max_abs is not None]
            out[fw] = max(values) if values else None
        else:
            out[fw] = "weights only"
    return out
