"""`tensorferry demo`, the README's main command: the fixtures published to the local Hub, idempotently."""
from __future__ import annotations

import json

from tensorferry.fixtures import FAMILIES
from tensorferry.publish.cli import main
from tensorferry.publish.hub import LocalHub
from tensorferry.publish.hub_io import hub_api


def test_demo_publishes_every_fixture_and_a_rerun_commits_nothing(tmp_path, capsys) -> None:
    data = tmp_path / "hub"
    assert main(["demo", "--hub-data-dir", str(data), "--verify", "weights", "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["serve"] == f"tensorferry hub serve --data-dir {data}"
    assert set(first["repos"]) == set(FAMILIES)
    for family, repo in first["repos"].items():
        assert repo["repo_id"] == f"tensorferry/tiny-{family}" and repo["commit_oid"] and not repo["no_op"]
        assert repo["verification"]["passed"] and repo["verification"]["weights_only"] == ["tf", "flax"]
    assert main(["demo", "--hub-data-dir", str(data), "--verify", "weights"]) == 0
    out = capsys.readouterr().out
    assert out.count("nothing to publish (already there)") == len(FAMILIES) and "browse them: tensorferry hub serve" in out
    with LocalHub(data) as server:  # what `hub serve` shows afterwards
        api = hub_api(server.url)
        assert sorted(m.id for m in api.list_models(author="tensorferry")) == [f"tensorferry/tiny-{f}" for f in sorted(FAMILIES)]
        for family in FAMILIES:
            assert len(api.list_repo_commits(f"tensorferry/tiny-{family}")) == 2
            assert {"model.safetensors", "tf_model.h5", "flax_model.msgpack", "README.md"} <= set(
                api.list_repo_files(f"tensorferry/tiny-{family}"))
