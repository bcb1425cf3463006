"""The plan: every repo of the organisation read at its head, one decision and reason each; reads only."""
from __future__ import annotations

import json

from tensorferry.publish.cli import main

from .conftest import EXPECTED


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
