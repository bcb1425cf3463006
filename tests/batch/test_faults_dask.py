"""The same organisation, the same results: through a flaky Hub (injected 429s, 500s, dropped connections,
answers lost after the work was done),
and on Dask (a real ``distributed.LocalCluster`` with 2 workers, started by ``--dask local`` or reached
through ``--scheduler``)."""
from __future__ import annotations

import json

from tensorferry.converters.pipeline import parse_size
from tensorferry.publish.batch.run import BatchOptions, run_batch
from tensorferry.publish.hub import LocalHub

from .conftest import CONVERTED, EXPECTED, MAX_SIZE, build_org, statuses, tensorferry_prs


def test_a_flaky_hub_ends_with_the_same_result_and_one_pr_per_repo(tmp_path, variants) -> None:
    data = tmp_path / "hub"
    with LocalHub(data) as calm:
        org = build_org(calm.url, data, variants)
    faults = "429:0.04,500:0.04,drop:0.03,lost:0.02,seed:5"
    with LocalHub(data, env={"TENSORFERRY_HUB_FAULTS": faults}) as flaky:
        opts = BatchOptions(org.name, endpoint=flaky.url, token=org.token, max_size=parse_size(MAX_SIZE), verify="weights",
                            workers=2, journal=tmp_path / "j.sqlite", report=tmp_path / "report",
                            cache_dir=str(tmp_path / "cache"), backoff=0.2, progress=False)
        result = run_batch(opts, say=lambda *a: None)
        log = (data / "server.log").read_text(errors="replace")
    assert statuses(result.rows) == EXPECTED, [r for r in result.rows if r["status"] == "failed"]
    with LocalHub(data) as calm:  # the same data, no faults: what landed
        org.url = calm.url
        assert all(len(tensorferry_prs(org, n)) == 1 for n in CONVERTED)
    assert "TEST-ONLY fault injection" in log  # the server read the switch at start


def test_dask_local_with_two_workers_gives_the_same_results(org, tmp_path, cli) -> None:
    code, out, err = cli(*org.cli_args(tmp_path, "--dask", "local", "--workers", "2", "--json"))
    report = json.loads(out)
    assert code == 2, err  # the corrupt repo
    assert statuses(report["repos"]) == EXPECTED
    assert all(len(tensorferry_prs(org, n)) == 1 for n in CONVERTED)
    saved = json.loads((tmp_path / "report" / "report.json").read_text())
    assert saved["executor"] == "dask local (2 workers)" and statuses(saved["repos"]) == EXPECTED
    from tensorferry.publish.batch.journal import Journal

    rows = Journal(tmp_path / "journal.sqlite").rows()
    assert {r["repo_id"].split("/")[1]: r["state"] for r in rows} == {n: s for n, (s, _) in EXPECTED.items()}
    assert all(r["deltas"] for r in rows if r["state"] == "pushed")  # the workers' verification reached the journal
    written = [out, err, (tmp_path / "journal.sqlite").read_bytes().decode("latin-1"),
               *[f.read_text() for f in (tmp_path / "report").iterdir()]]
    assert not any(org.token in text for text in written)  # the token travelled to the workers, and nowhere else


def test_a_running_dask_scheduler_takes_the_repos_with_their_memory_as_a_resource(org, tmp_path, cli) -> None:
    from distributed import LocalCluster

    from tensorferry.publish.batch.pool import DaskPool

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      resources={"MEMORY": 2e9}) as cluster:
        pool = DaskPool(cluster.scheduler_address, 2, 0)
        try:  # each task will ask for its estimate, capped at what a worker lends
            assert pool.capacity == 2e9
        finally:
            pool.close()
        code, out, err = cli(*org.cli_args(tmp_path, "--scheduler", cluster.scheduler_address, "--include", "*-cnn",
                                           "--json"))
    report = json.loads(out)
    assert code == 0, err
    assert statuses(report["repos"]) == {n: EXPECTED[n] for n in ("pt-cnn", "tf-cnn", "flax-cnn")}
    assert json.loads((tmp_path / "report" / "report.json").read_text())["executor"].startswith("dask tcp://")
    assert all(len(tensorferry_prs(org, n)) == 1 for n in ("pt-cnn", "tf-cnn", "flax-cnn"))


def test_on_a_remote_scheduler_the_workers_use_their_own_scratch_and_cache(org, tmp_path, monkeypatch) -> None:
    """The coordinator's journal folder and HF cache are not paths on another machine: with --scheduler a
    task carries no work_dir (and no cache_dir unless --cache-dir was given), and runs in a temp folder
    of its own that it removes."""
    import tempfile

    from tensorferry.publish.batch.journal import Journal
    from tensorferry.publish.batch.plan import plan_org
    from tensorferry.publish.batch.run import _reconcile
    from tensorferry.publish.batch.work import run_task
    from tensorferry.publish.hub_io import Hub

    hub = Hub(org.url, org.token)
    plans = plan_org(hub, org.name, ["pt", "tf", "flax"], include=["pt-cnn"])
    work_root = tmp_path / "journal.sqlite.work"
    tasks = {}
    for name, scheduler in (("local", None), ("remote", "tcp://10.0.0.5:8786")):
        journal = Journal(tmp_path / f"{name}.sqlite")
        opts = BatchOptions(org.name, endpoint=org.url, token=org.token, scheduler=scheduler, verify="weights")
        tasks[name] = _reconcile(hub, opts, plans, journal, work_root)[0][0][0]
        journal.close()
    assert tasks["local"].work_dir == str(work_root) and tasks["remote"].work_dir is None
    assert tasks["remote"].cache_dir is None  # the worker's default HF cache

    temp = tmp_path / "worker-tmp"  # stands for the worker's own temp folder
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    task = tasks["remote"]
    task.cache_dir = str(tmp_path / "cache")  # as --cache-dir would (keeps the test out of the user's cache)
    assert run_task(task).status == "pushed"
    assert not [p for p in temp.iterdir() if p.name.startswith("tensorferry-batch-")] and not work_root.exists()
    assert len(tensorferry_prs(org, "pt-cnn")) == 1
