"""The plan: every repo of the organisation read at its head, one decision and reason each; reads only."""
from __future__ import annotations

import json

from tensorferry.publish.cli import main

from .conftest import EXPECTED, tensorferry_prs


def test_dry_run_decides_every_repo_with_its_reason_and_writes_nothing(org, tmp_path, capsys) -> None:
    heads = {name: org.api().model_info(org.repo(name)).sha for name in EXPECTED}
    code = main(org.cli_args(tmp_path, "--dry-run", "--json"))
    plans = {p["repo_id"].split("/", 1)[1]: p for p in json.loads(capsys.readouterr().out)}
    assert code == 0 and set(plans) == set(EXPECTED)  # the private repo is listed too: the token can read it
    for name, (status, added) in EXPECTED.items():
        action = "convert" if status in ("pushed", "failed") else "skip"
        assert plans[name]["action"] == action, (name, plans[name]["reason"])
        assert plans[name]["head"] in (heads[name], None)
        if action == "convert":
            assert ",".join(plans[name]["missing"]) == (added or "tf,flax"), name
    assert plans["complete"]["reason"] == "complete (pt, tf, flax)"
    assert plans["big"]["reason"].startswith("over --max-size (640,")
    assert plans["has-pr"]["reason"] == f"tensorferry PR #1 (closed) exists for head {heads['has-pr'][:8]}"
    assert plans["no-weights"]["reason"].startswith("no recognised weights")
    assert plans["tf-cnn"]["source"] == "tf" and plans["flax-cnn"]["source"] == "flax" and plans["private"]["private"]
    assert plans["sharded"]["size"] > 80_000  # every shard counted
    assert not (tmp_path / "journal.sqlite").exists() and not (tmp_path / "report").exists()
    assert {name: org.api().model_info(org.repo(name)).sha for name in EXPECTED} == heads


def test_include_and_exclude_pick_repos_by_name_or_id(org, tmp_path, capsys) -> None:
    code = main(org.cli_args(tmp_path, "--dry-run", "--include", "pt-*", "--include", f"{org.name}/tf-*",
                             "--exclude", "pt-tf"))
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert sorted(line.split()[1].split("/")[1] for line in lines) == ["pt-cnn", "pt-recurrent", "tf-cnn"]


def test_a_hub_failure_while_planning_fails_the_repo_and_the_next_run_plans_it_again(tmp_path, variants, cli) -> None:
    """A 429 that outlives every retry is not a decision: the repo is failed (exit 4), never skipped, and
    the next run (Hub healthy again) converts it. Refusals (403/404) stay 'unreadable' skips."""
    from tensorferry.publish.batch.plan import plan_repo
    from tensorferry.publish.batch.run import BatchOptions, run_batch
    from tensorferry.publish.hub import LocalHub
    from tensorferry.publish.hub_io import Hub

    from .conftest import build_org, statuses

    data = tmp_path / "hub"
    with LocalHub(data) as calm:
        org = build_org(calm.url, data, {n: variants[n] for n in ("pt-cnn", "pt-tf", "has-pr")})
    repo = f"/api/models/{org.name}/pt-cnn"
    opts = BatchOptions(org.name, endpoint=None, token=org.token, include=["pt-cnn", "pt-tf"], verify="weights",
                        workers=1, journal=tmp_path / "j.sqlite", report=tmp_path / "report",
                        cache_dir=str(tmp_path / "cache"), progress=False)
    with LocalHub(data, env={"TENSORFERRY_HUB_FAULTS": f"429@{repo}:1.0"}) as flaky:  # every request about it
        opts.endpoint = flaky.url
        first = run_batch(opts, say=lambda *a: None)
    rows = {r["repo"].split("/")[1]: r for r in first.rows}
    assert rows["pt-cnn"]["status"] == "failed" and "planning failed" in rows["pt-cnn"]["reason"], rows["pt-cnn"]
    assert "429" in rows["pt-cnn"]["reason"] and first.exit_code == 4
    assert rows["pt-tf"]["status"] == "pushed"  # the others went on

    with LocalHub(data, env={"TENSORFERRY_HUB_FAULTS": f"429@{repo}/discussions:1.0"}) as flaky:  # its PR list only
        code, out, _ = cli("batch", org.name, "--endpoint", flaky.url, "--token", org.token, "--include", "pt-cnn",
                           "--dry-run", "--json")
    plan = json.loads(out)[0]
    assert code == 4 and plan["action"] == "fail" and "429" in plan["reason"], plan

    with LocalHub(data) as calm:
        opts.endpoint = calm.url
        second = run_batch(opts, say=lambda *a: None)
        org.url = calm.url
        prs = list(org.api().get_repo_discussions(org.repo("pt-cnn"), discussion_type="pull_request"))
        gone = plan_repo(Hub(calm.url, org.token), f"{org.name}/no-such-repo", ["pt", "tf", "flax"])
    assert statuses(second.rows) == {"pt-cnn": ("pushed", "tf,flax"), "pt-tf": ("pushed", "flax")}
    assert second.exit_code == 0 and len(prs) == 1
    assert gone.action == "skip" and gone.reason.startswith("unreadable: "), gone  # a 404 is a refusal: skipped


def test_a_negative_retries_count_is_refused_before_anything_runs(org, tmp_path, cli) -> None:
    code, out, err = cli(*org.cli_args(tmp_path, "--retries", "-1", "--include", "pt-cnn"))
    assert code == 2 and "--retries: must be 0 or more, got -1" in err and not out
    assert not (tmp_path / "journal.sqlite").exists() and not tensorferry_prs(org, "pt-cnn")


def test_a_task_given_negative_retries_still_runs_once(org, tmp_path) -> None:
    """The Python API has no CLI check: ``retries=-1`` must still mean one attempt, not none."""
    from tensorferry.publish.batch.work import RepoTask, run_task

    repo = org.repo("pt-tf")
    task = RepoTask(repo, org.api().model_info(repo).sha, "0b0b0b0b0b0b0b0b", "pt", ["flax"], org.url, token=org.token,
                    verify="weights", cache_dir=str(tmp_path / "cache"), work_dir=str(tmp_path / "w"), retries=-1)
    outcome = run_task(task)
    assert outcome.status == "pushed" and outcome.attempts == 1, outcome
