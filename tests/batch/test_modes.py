"""--push (one commit per repo on main), the race guard, and the memory budget of local workers."""
from __future__ import annotations

import json

from tensorferry.publish.batch.plan import marker
from tensorferry.publish.batch.pool import LocalPool
from tensorferry.publish.batch.work import RepoTask, run_task

from .conftest import tensorferry_prs


def test_push_makes_one_commit_per_repo_and_a_rerun_is_a_no_op(org, tmp_path, cli) -> None:
    args = org.cli_args(tmp_path, "--push", "--include", "tf-cnn", "--include", "pt-tf", "--json")
    before = {n: len(org.api().list_repo_commits(org.repo(n))) for n in ("tf-cnn", "pt-tf")}
    code, out, _ = cli(*args)
    rows = {r["repo"].split("/")[1]: r for r in json.loads(out)["repos"]}
    assert code == 0 and {r["status"] for r in rows.values()} == {"pushed"}
    for name in ("tf-cnn", "pt-tf"):
        commits = org.api().list_repo_commits(org.repo(name))
        assert len(commits) == before[name] + 1 and rows[name]["url"].endswith(commits[0].commit_id)
        assert {"model.safetensors", "tf_model.h5", "flax_model.msgpack"} <= set(org.api().list_repo_files(org.repo(name)))
        assert not tensorferry_prs(org, name)
    code, out, _ = cli(*args)
    assert code == 0 and "2 pushed (2 in an earlier run)" in json.loads(out)["summary"]
    assert {n: len(org.api().list_repo_commits(org.repo(n))) for n in ("tf-cnn", "pt-tf")} == {
        n: c + 1 for n, c in before.items()}


def test_the_race_guard_stops_before_committing_when_a_tensorferry_pr_appeared(org, tmp_path) -> None:
    repo = org.repo("pt-recurrent")
    head = org.api().model_info(repo).sha
    task = RepoTask(repo, head, "0123456789abcdef", "pt", ["tf", "flax"], org.url, token=org.token, verify="weights",
                    cache_dir=str(tmp_path / "cache"), work_dir=str(tmp_path / "work"))
    # planned with no PR; meanwhile another run opens one for the same head
    org.api().create_pull_request(repo, title="Add tf, flax weights (tensorferry)", description=marker(head, "fedcba9876543210"))
    outcome = run_task(task)
    assert outcome.status == "skipped" and outcome.reason == "tensorferry PR #1 appeared meanwhile"
    assert len(tensorferry_prs(org, "pt-recurrent")) == 1
    assert not (tmp_path / "work" / f"{org.name}--pt-recurrent").exists() and not list((tmp_path / "work").iterdir())


def test_local_workers_keep_within_the_memory_budget(org, tmp_path) -> None:
    """Two workers, a budget that holds one repo at a time: the repos run one after the other."""
    def task(name):
        head = org.api().model_info(org.repo(name)).sha
        return RepoTask(org.repo(name), head, "r" + name.replace("-", ""), "pt", ["tf"], org.url, token=org.token,
                        verify="weights", cache_dir=str(tmp_path / "cache"), work_dir=str(tmp_path / "work"))

    pool = LocalPool(2, budget=100)
    started, finished, events = [], [], []
    try:
        for outcome in pool.run([(task("pt-cnn"), 80), (task("private"), 80)], events.append,
                                lambda t: started.append((t.repo_id.split("/")[1], len(finished)))):
            finished.append(outcome)
    finally:
        pool.close()
    assert [o.status for o in finished] == ["pushed", "pushed"]
    assert started == [("pt-cnn", 0), ("private", 1)]  # the second started only once the first was done
    assert {e["state"] for e in events} == {"converting", "verified"}  # the workers' progress reached us


def test_one_journal_serves_one_run_at_a_time(org, tmp_path) -> None:
    import pytest

    from tensorferry.converters.errors import InputError
    from tensorferry.publish.batch.run import BatchOptions, _lock, run_batch

    held = _lock(tmp_path / "journal.sqlite")  # another run holds the journal
    try:
        opts = BatchOptions(org.name, endpoint=org.url, token=org.token, journal=tmp_path / "journal.sqlite",
                            report=tmp_path / "report", include=["pt-cnn"], progress=False)
        with pytest.raises(InputError, match="another tensorferry batch run is using this journal"):
            run_batch(opts, say=lambda *a: None)
    finally:
        held.close()
    assert not tensorferry_prs(org, "pt-cnn") and not (tmp_path / "report").exists()


def test_the_journal_refuses_unknown_states_and_fields(tmp_path) -> None:
    import pytest

    from tensorferry.publish.batch.journal import Journal

    j = Journal(tmp_path / "j.sqlite")
    with pytest.raises(ValueError, match="unknown state"):
        j.set("a/b", "done")
    with pytest.raises(ValueError, match="unknown journal fields"):
        j.set("a/b", "planned", colour="red")
    j.set("a/b", "planned", head="h", run="r")
    j.set("a/b", "failed", error="boom", exit_code=4)
    assert {k: j.get("a/b")[k] for k in ("state", "head", "run", "error", "exit_code")} == {
        "state": "failed", "head": "h", "run": "r", "error": "boom", "exit_code": 4}


def test_a_big_repo_reports_its_conversion_progress(org, tmp_path, monkeypatch) -> None:
    """Repos over PROGRESS_FROM bytes send the bytes written so far (lowered here: the fixtures are tiny)."""
    import queue

    from tensorferry.publish.batch import work

    events: queue.Queue = queue.Queue()
    monkeypatch.setattr(work, "_queue", events)
    monkeypatch.setattr(work, "PROGRESS_FROM", 1)
    monkeypatch.setattr(work, "PROGRESS_EVERY", 0.0)
    repo = org.repo("private")
    task = RepoTask(repo, org.api().model_info(repo).sha, "0011223344556677", "pt", ["tf", "flax"], org.url,
                    token=org.token, verify="weights", cache_dir=str(tmp_path / "cache"), work_dir=str(tmp_path / "w"),
                    size=87_756)
    assert run_task(task).status == "pushed"
    got = [events.get_nowait() for _ in range(events.qsize())]
    written = [e["bytes"] for e in got if e["state"] == "progress"]
    assert written and written == sorted(written) and 80_000 < written[-1] <= 87_756  # the source tensors read
    assert [e["state"] for e in got if e["state"] != "progress"] == ["converting", "verified"]


def test_a_dead_local_worker_fails_only_its_repo_and_the_others_finish(org, tmp_path) -> None:
    """SIGKILL (as the OOM killer sends it) of the worker running one repo: the executor breaks and
    terminates its other worker too; the pool is rebuilt, only the dead worker's repo fails, the rest run."""
    import os
    import signal

    def task(name, source, missing):
        head = org.api().model_info(org.repo(name)).sha
        return RepoTask(org.repo(name), head, "k" + name.replace("-", ""), source, missing, org.url, token=org.token,
                        verify="weights", cache_dir=str(tmp_path / "cache"), work_dir=str(tmp_path / "work"))

    killed: list[int] = []

    def on_event(event) -> None:
        if event["repo_id"] == org.repo("pt-cnn") and event["state"] == "converting" and not killed:
            killed.append(event["pid"])
            os.kill(event["pid"], signal.SIGKILL)  # the test kills the worker: nothing test-only in the code

    pool = LocalPool(2, budget=2**40)
    outcomes = {}
    try:
        tasks = [(task("pt-cnn", "pt", ["tf", "flax"]), 1), (task("pt-tf", "pt", ["flax"]), 1),
                 (task("tf-cnn", "tf", ["pt", "flax"]), 1)]
        for outcome in pool.run(tasks, on_event, lambda t: None):
            outcomes[outcome.repo_id.split("/")[1]] = outcome
    finally:
        pool.close()
    assert killed and set(outcomes) == {"pt-cnn", "pt-tf", "tf-cnn"}
    assert outcomes["pt-tf"].status == "pushed" and outcomes["tf-cnn"].status == "pushed", outcomes
    assert outcomes["pt-cnn"].status == "failed" and "killed by SIGKILL" in outcomes["pt-cnn"].error
    assert len(tensorferry_prs(org, "pt-tf")) == 1 and len(tensorferry_prs(org, "tf-cnn")) == 1
    assert not tensorferry_prs(org, "pt-cnn")


def test_a_branch_moved_since_planning_is_a_typed_error_and_the_repo_is_not_retried(org, tmp_path) -> None:
    """--push with parent_commit: someone committed to main after the plan. publish raises BranchMovedError
    (a HubError, exit code 4), and the worker fails the repo at once: a re-run must re-plan it."""
    import pytest

    from tensorferry.converters.errors import BranchMovedError, HubError
    from tensorferry.publish import publish

    repo = org.repo("pt-tf")
    planned = org.api().model_info(repo).sha
    org.api().upload_file(path_or_fileobj=b"moved\n", path_in_repo="NOTES.md", repo_id=repo, commit_message="meanwhile")
    with pytest.raises(BranchMovedError, match="main changed since planning") as caught:
        publish(repo, repo, to=["pt", "tf", "flax"], endpoint=org.url, token=org.token, parent_commit=planned,
                source_revision=planned, verify="weights", cache_dir=str(tmp_path / "cache"), quiet=True)
    assert isinstance(caught.value, HubError) and caught.value.exit_code == 4
    task = RepoTask(repo, planned, "0a0a0a0a0a0a0a0a", "pt", ["flax"], org.url, token=org.token, create_pr=False,
                    verify="weights", cache_dir=str(tmp_path / "cache"), work_dir=str(tmp_path / "work"), retries=2,
                    backoff=5.0)
    outcome = run_task(task)
    assert outcome.status == "failed" and outcome.exit_code == 4 and outcome.attempts == 1, outcome
    assert "changed since planning" in outcome.error and outcome.seconds < 5.0  # no backoff, no second attempt
