"""The batch coordinator: plan the organisation, reconcile the plan with the journal, run the repos
that need work on local processes or Dask, keep the journal, write the report.

Resume rules (the journal and the Hub agree before anything is pushed):

* a repo ``pushed`` at the same head (or now complete / carrying our PR) is not redone;
* a repo left ``converting``/``verified`` by a killed run, or ``failed`` (an answer lost after every
  retry), whose PR (or ``--push`` commit) landed, found by the run token in its marker, is recorded
  ``pushed`` with its URL; otherwise it restarts from scratch (its scratch folder is removed) with
  the same run token, and the race guard re-checks the PR list just before committing;
* everything else is re-planned from the Hub: a skip is a skip again, a failure is retried;
* a repo the Hub failed to answer for while planning (after retries) is recorded ``failed`` (exit
  code 4), not skipped, so the next run plans it again.

>>> BatchOptions("acme", token="hf_secretsecret")
BatchOptions(org='acme', to=['pt', 'tf', 'flax'], endpoint=None, token=<set>)

A whole run against the local Hub (one PT-only repo gets a PR with its TF and Flax variants):

>>> import tempfile
>>> from tensorferry.publish.hub import LocalHub, create_token
>>> from tensorferry.publish.hub_io import hub_api
>>> tmp = tempfile.mkdtemp()
>>> with LocalHub(tmp + "/hub") as server:
...     token = create_token(server.data_dir, "bot", org="acme")
...     api = hub_api(server.url, token)
...     _ = api.create_repo("acme/cnn")
...     _ = api.upload_folder(repo_id="acme/cnn", folder_path="fixtures/checkpoints/cnn")
...     opts = BatchOptions("acme", endpoint=server.url, token=token, workers=1, verify="weights", progress=False,
...                         journal=tmp + "/j.sqlite", report=tmp + "/report", cache_dir=tmp + "/cache")
...     result = run_batch(opts, say=lambda *a: None)
>>> [(r["repo"], r["status"], r["added"]) for r in result.rows], result.exit_code
([('acme/cnn', 'pushed', 'tf,flax')], 0)
"""
from __future__ import annotations

import fcntl
import shutil
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tensorferry.converters.constants import FRAMEWORKS
from tensorferry.converters.errors import BranchMovedError, HubError, InputError

from ..hub_io import Hub
from .journal import IN_FLIGHT, Journal
from .plan import RepoPlan, marker, plan_org
from .report import report_row, summary, write_report
from .work import Outcome, RepoTask


@dataclass
class BatchOptions:
    """The options of ``tensorferry batch`` (see ``cli``); sizes in bytes."""

    org: str
    to: list[str] = field(default_factory=lambda: list(FRAMEWORKS))
    endpoint: str | None = None
    token: str | None = field(default=None, repr=False)
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    max_size: int | None = None
    create_pr: bool = True
    dry_run: bool = False
    workers: int = 2
    max_memory: int | None = None
    scheduler: str | None = None
    dask_local: bool = False
    journal: str | Path | None = None
    report: str | Path | None = None
    verify: str = "auto"
    cache_dir: str | None = None
    max_shard_size: str = "5GB"
    retries: int = 2
    backoff: float = 1.0
    progress: bool = True

    def __repr__(self) -> str:
        return (f"BatchOptions(org={self.org!r}, to={self.to!r}, endpoint={self.endpoint!r}, "
                f"token={'<set>' if self.token else None})")

    @property
    def journal_path(self) -> Path:
        return Path(self.journal or f"tensorferry-batch-{self.org}.sqlite")

    @property
    def report_dir(self) -> Path:
        return Path(self.report or f"tensorferry-batch-{self.org}-report")


@dataclass
class BatchResult:
    """What a run did: the plan, the report rows, the summary line and the report files."""

    plans: list[RepoPlan]
    rows: list[dict[str, Any]] = field(default_factory=list)
    line: str = ""
    files: dict[str, Path] = field(default_factory=dict)
    seconds: float = 0.0
    new_pushes: int = 0

    @property
    def exit_code(self) -> int:
        """0 when no repo failed, else the highest exit code among the failures (2 input, 3 verification, 4 Hub)."""
        return max((r.get("exit_code") or 1 for r in self.rows if r["status"] == "failed"), default=0)


def run_batch(opts: BatchOptions, say: Any = None) -> BatchResult:
    """Plan ORG, then (unless ``dry_run``) convert, verify and push every repo that needs it; see the module doc."""
    started = time.perf_counter()
    say = say or (lambda *a: print(*a, file=sys.stderr))
    hub = Hub.resolve(opts.endpoint, opts.token)
    say(f"planning {opts.org} on {hub.host} ...")
    plans = plan_org(hub, opts.org, opts.to, include=opts.include, exclude=opts.exclude, max_size=opts.max_size,
                     create_pr=opts.create_pr)
    if opts.dry_run:
        return BatchResult(plans, seconds=time.perf_counter() - started)
    journal = Journal(opts.journal_path)
    work_root = journal.path.parent / (journal.path.name + ".work")
    try:
        lock = _lock(journal.path)
        try:
            shutil.rmtree(work_root, ignore_errors=True)  # scratch of a killed run: never reused
            tasks, earlier = _reconcile(hub, opts, plans, journal, work_root)
            new = _execute(opts, plans, tasks, journal)
        finally:
            shutil.rmtree(work_root, ignore_errors=True)
            lock.close()
        rows = [report_row(r) for r in journal.rows([p.repo_id for p in plans])]
    finally:
        journal.close()
    seconds = time.perf_counter() - started
    line = f"{opts.org}: " + summary(rows, seconds, len(earlier))
    extra = {"org": opts.org, "endpoint": hub.endpoint, "mode": "pr" if opts.create_pr else "push",
             "executor": _executor_name(opts), "seconds": round(seconds, 2)}
    files = write_report(rows, opts.report_dir, f"tensorferry batch {opts.org}", line, extra)
    return BatchResult(plans, rows, line, files, seconds, new)


def _lock(path: Path) -> Any:
    handle = open(path.parent / (path.name + ".lock"), "w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise InputError(path, "another tensorferry batch run is using this journal") from None
    return handle


def _executor_name(opts: BatchOptions) -> str:
    if opts.scheduler:
        return f"dask {opts.scheduler}"
    return f"dask local ({opts.workers} workers)" if opts.dask_local else f"local ({opts.workers} processes)"


def _reconcile(hub: Hub, opts: BatchOptions, plans: list[RepoPlan], journal: Journal,
               work_root: Path) -> tuple[list[tuple[RepoTask, int]], set[str]]:
    """Journal rows for the plan; the tasks to run, and the repos done in an earlier run."""
    tasks, earlier = [], set()
    for p in plans:
        row = journal.get(p.repo_id)
        same_head = row is not None and row["head"] == p.head
        if row and row["state"] == "pushed" and (same_head or p.action in ("skip", "fail")):
            earlier.add(p.repo_id)
            continue
        if p.action == "fail":  # the Hub failed while planning: failed now, planned again by the next run
            journal.set(p.repo_id, "failed", error=p.reason, reason=None, url=None, added=None, deltas=None,
                        seconds=0.0, exit_code=HubError.exit_code)
            continue
        if p.action == "skip":
            # in flight when a run was killed, or failed after its answer was lost: did it land after all?
            maybe = row and (row["state"] in IN_FLIGHT or (row["state"] == "failed" and row["run"]))
            landed = _landed(hub, opts, p, row) if maybe else None
            if landed:
                journal.set(p.repo_id, "pushed", url=landed, added=p.missing or row.get("added"),
                            reason="landed in an earlier run (interrupted, or its answer lost)",
                            error=None, exit_code=0)
                earlier.add(p.repo_id)
            else:
                journal.set(p.repo_id, "skipped", head=p.head, source=p.source, reason=p.reason, error=None, url=None,
                            added=None, deltas=None, seconds=0.0, exit_code=0)
            continue
        run = row["run"] if row and same_head and row["run"] else uuid.uuid4().hex[:16]
        journal.set(p.repo_id, "planned", head=p.head, run=run, source=p.source, reason=p.reason, error=None, url=None,
                    added=None, deltas=None, seconds=None, exit_code=0)
        task = RepoTask(p.repo_id, p.head, run, p.source, p.missing, hub.endpoint, token=hub.token,
                        create_pr=opts.create_pr, verify=opts.verify, cache_dir=opts.cache_dir,
                        # on a remote cluster the coordinator's folders are not the workers': each uses its own temp
                        work_dir=None if opts.scheduler else str(work_root),
                        max_shard_size=opts.max_shard_size, retries=opts.retries, backoff=opts.backoff, size=p.size)
        tasks.append((task, p.memory))
    return tasks, earlier


def _landed(hub: Hub, opts: BatchOptions, plan: RepoPlan, row: dict[str, Any]) -> str | None:
    """The URL of the PR or commit an earlier run of this journal made, if it landed."""
    if opts.create_pr:
        mine = [pr for pr in plan.prs if pr.run == row["run"]]
        return mine[0].url if mine else None
    if plan.head is None or not row.get("head") or not row.get("run"):
        return None
    from ..committing import landed as commit_landed

    try:  # our --push commit is the branch's newest, made on the planned head, with this run's marker
        found = commit_landed(hub.api(), hub, plan.repo_id, "main", row["head"], marker(row["head"], row["run"]),
                              False, 0)
    except BranchMovedError:  # someone else's commit is the newest: ours did not land (or was built on)
        return None
    return found[0] if found else None


def _execute(opts: BatchOptions, plans: list[RepoPlan], tasks: list[tuple[RepoTask, int]], journal: Journal) -> int:
    """Run TASKS, journaling every state change; returns how many repos were pushed now."""
    from tqdm import tqdm

    from .pool import DaskPool, LocalPool, available_memory

    finished: set[str] = set()
    bar = tqdm(total=len(plans), initial=len(plans) - len(tasks), unit="repo", desc=f"batch {opts.org}",
               file=sys.stderr, disable=None if opts.progress else True, leave=True)
    if not tasks:
        bar.close()
        return 0
    budget = opts.max_memory or int(available_memory() * 0.8)
    dask = bool(opts.scheduler or opts.dask_local)
    pool = DaskPool(opts.scheduler, opts.workers, budget) if dask else LocalPool(opts.workers, budget)

    def on_event(event: dict[str, Any]) -> None:
        repo = event.pop("repo_id")
        if event["state"] == "progress":  # a big repo's conversion: shown on the bar, not journaled
            bar.set_postfix_str(f"{repo} {event['bytes'] / 1e6:,.0f} MB converted")
            return
        if repo not in finished:  # a late progress message never moves a finished repo back
            journal.set(repo, event.pop("state"), **{k: v for k, v in event.items() if k in ("deltas", "attempts")})

    def on_start(task: RepoTask) -> None:
        journal.set(task.repo_id, "converting")

    pushed = 0
    try:
        for outcome in pool.run(tasks, on_event, on_start):
            finished.add(outcome.repo_id)
            _record(journal, outcome)
            pushed += outcome.status == "pushed"
            bar.set_postfix_str(f"{outcome.repo_id} {outcome.status}", refresh=False)
            bar.update(1)
    finally:
        pool.close()
        bar.close()
    return pushed


def _record(journal: Journal, o: Outcome) -> None:
    journal.set(o.repo_id, o.status, url=o.url, reason=o.reason, error=o.error, exit_code=o.exit_code,
                added=o.added or None, deltas=o.deltas or None, seconds=o.seconds, attempts=o.attempts)
