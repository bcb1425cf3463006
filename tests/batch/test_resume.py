"""``kill -9`` mid-run, then resume: every incomplete repo ends with exactly one PR holding every variant;
a second run is a no-op.  The CLI runs as a real subprocess with 2 local worker processes; only the
command itself is killed, and its workers must die with it (no orphan goes on to commit)."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from tensorferry.converters.constants import FILES

from .conftest import CONVERTED, EXPECTED, statuses, tensorferry_prs

VARIANT_FILES = {fw: FILES[fw].names for fw in FILES}


def _states(journal) -> dict[str, str]:
    if not journal.exists():
        return {}
    try:
        with sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=5) as db:
            return dict(db.execute("SELECT repo_id, state FROM repos").fetchall())
    except sqlite3.OperationalError:  # the table is not there yet
        return {}


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/task/{p}/children") as fh:
                kids = [int(c) for c in fh.read().split()]
        except OSError:
            kids = []
        out += kids
        todo += kids
    return out


def _wait_gone(pids: list[int], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while True:
        alive = [p for p in pids if os.path.exists(f"/proc/{p}") and "zombie" not in _state(p)]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/status") as fh:
            return next((line for line in fh if line.startswith("State:")), "").lower()
    except OSError:
        return "zombie"


def _run(args, **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", HF_HUB_DISABLE_PROGRESS_BARS="1")
    return subprocess.run([sys.executable, "-m", "tensorferry.publish.cli", *args], capture_output=True, text=True,
                          env=env, timeout=300, **kw)


def test_kill_9_mid_run_then_resume_then_a_second_run_is_a_no_op(org, tmp_path) -> None:
    journal = tmp_path / "journal.sqlite"
    args = org.cli_args(tmp_path, "--workers", "2")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", HF_HUB_DISABLE_PROGRESS_BARS="1")
    proc = subprocess.Popen([sys.executable, "-m", "tensorferry.publish.cli", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        states = _states(journal)
        if sum(s == "pushed" for s in states.values()) >= 2:
            break
        time.sleep(0.02)
    workers = _descendants(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)  # kill -9 of the command, mid-run
    proc.wait()
    at_kill = _states(journal)
    survivors = _wait_gone(workers, 10)
    for pid in survivors:  # only if the test is about to fail: leave no orphan behind
        os.kill(pid, signal.SIGKILL)
    assert not survivors, "worker processes outlived the coordinator"
    assert proc.returncode == -signal.SIGKILL and len(workers) >= 2
    assert sum(s == "pushed" for s in at_kill.values()) >= 2, at_kill
    unfinished = [r for r in at_kill if at_kill[r] in ("planned", "converting", "verified")]
    assert unfinished, f"the run finished before it was killed: {at_kill}"

    done = _run(args + ["--json"])
    assert done.returncode == 2, done.stderr  # the corrupt repo's bad input; the others went on
    report = json.loads(done.stdout)
    assert statuses(report["repos"]) == EXPECTED
    for name in CONVERTED:  # exactly one PR each, holding every variant at the PR's revision
        prs = tensorferry_prs(org, name)
        assert len(prs) == 1 and prs[0].status == "open", (name, prs)
        files = set(org.api().list_repo_files(org.repo(name), revision=prs[0].git_reference))
        for fw, names in VARIANT_FILES.items():
            assert files & set(names), (name, fw, sorted(files))
        assert {"README.md", "config.json"} <= files
    assert len(tensorferry_prs(org, "has-pr")) == 1  # the declined PR is not re-opened
    assert not (tmp_path / "journal.sqlite.work").exists()  # scratch of the killed run removed
    rows = {r["repo"]: r for r in report["repos"]}
    assert all(rows[org.repo(n)]["url"].endswith("/discussions/1") for n in CONVERTED)

    heads = {n: org.api().model_info(org.repo(n)).sha for n in EXPECTED}
    again = _run(args + ["--json"])
    second = json.loads(again.stdout)
    assert again.returncode == 2 and statuses(second["repos"]) == EXPECTED
    assert f"{len(CONVERTED)} pushed ({len(CONVERTED)} in an earlier run)" in second["summary"]
    assert all(len(tensorferry_prs(org, n)) == 1 for n in CONVERTED)  # no new PR
    assert {n: org.api().model_info(org.repo(n)).sha for n in EXPECTED} == heads  # no commit anywhere
    with sqlite3.connect(journal) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_pr_that_landed_just_before_the_kill_is_recognised_not_duplicated(org, tmp_path, cli) -> None:
    """The worst moment: the PR landed, the coordinator died before journaling it (journal: ``verified``)."""
    from tensorferry.publish import publish
    from tensorferry.publish.batch.journal import Journal
    from tensorferry.publish.batch.plan import marker

    repo = org.repo("pt-cnn")
    head = org.api().model_info(repo).sha
    landed = publish(repo, repo, to=["pt", "tf", "flax"], endpoint=org.url, token=org.token, create_pr=True,
                     commit_message="Add tf, flax weights (tensorferry)", parent_commit=head, verify="weights",
                     cache_dir=str(tmp_path / "hf-cache"), quiet=True, description_marker=marker(head, "abad1dea5eed1234"))
    journal = Journal(tmp_path / "journal.sqlite")
    journal.set(repo, "verified", head=head, run="abad1dea5eed1234", source="pt")
    journal.close()
    code, out, _ = cli(*org.cli_args(tmp_path, "--include", "pt-cnn", "--include", "pt-tf", "--json"))
    rows = {r["repo"]: r for r in json.loads(out)["repos"]}
    assert code == 0
    assert rows[repo]["status"] == "pushed" and rows[repo]["url"] == landed.pr_url
    assert len(tensorferry_prs(org, "pt-cnn")) == 1  # recognised by its run token, not opened again
    assert rows[org.repo("pt-tf")]["status"] == "pushed" and len(tensorferry_prs(org, "pt-tf")) == 1


@pytest.mark.parametrize("push", [False, True], ids=["pull request", "push"])
def test_a_failed_repo_whose_pr_or_commit_landed_is_recorded_pushed_with_its_url(org, tmp_path, cli, push) -> None:
    """The answer was lost after every retry, so the run journaled 'failed', yet the PR (commit) landed:
    the next run finds it by its run token and records it pushed, with its URL, instead of 'skipped'."""
    from tensorferry.publish import publish
    from tensorferry.publish.batch.journal import Journal
    from tensorferry.publish.batch.plan import marker

    repo, run = org.repo("pt-cnn"), "10571057feedbeef"
    head = org.api().model_info(repo).sha
    landed = publish(repo, repo, to=["pt", "tf", "flax"], endpoint=org.url, token=org.token, create_pr=not push,
                     commit_message="Add tf, flax weights (tensorferry)", parent_commit=head, verify="weights",
                     cache_dir=str(tmp_path / "hf-cache"), quiet=True, description_marker=marker(head, run))
    journal = Journal(tmp_path / "journal.sqlite")
    journal.set(repo, "failed", head=head, run=run, source="pt", error="pt-cnn: commit: connection dropped", exit_code=4)
    journal.close()
    code, out, _ = cli(*org.cli_args(tmp_path, "--include", "pt-cnn", "--json", *(["--push"] if push else [])))
    report = json.loads(out)
    row = report["repos"][0]
    assert code == 0 and row["status"] == "pushed", row
    assert row["url"] == (landed.commit_url if push else landed.pr_url) and row["reason"].startswith("landed in an earlier run")
    assert "1 pushed (1 in an earlier run), 0 skipped, 0 failed" in report["summary"]
    assert len(tensorferry_prs(org, "pt-cnn")) == (0 if push else 1)
