"""A flaky Hub: publish gets through injected 429s, 500s and dropped connections with exactly one commit.

The local Hub's TEST-ONLY fault switch answers a seeded fraction of API and LFS requests with a
fault before doing any work: the retries of requests that did nothing, in the real client and in
tensorferry (a lost answer to a request that did its work is test_faults_lost.py).
"""
from __future__ import annotations

import pytest

from tensorferry.fixtures import checkpoint_dir
from tensorferry.publish import publish
from tensorferry.publish.hub import LocalHub, create_token
from tensorferry.publish.hub_io import hub_api


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_publish_survives_a_flaky_hub_with_exactly_one_commit(tmp_path, seed) -> None:
    faults = f"429:0.1,500:0.1,drop:0.05,seed:{seed}"
    with LocalHub(tmp_path / "hub", env={"TENSORFERRY_HUB_FAULTS": faults}) as server:
        token = create_token(server.data_dir, "alice")
        result = publish(checkpoint_dir("cnn"), "alice/flaky", endpoint=server.url, token=token, verify="weights",
                         quiet=True)
    with LocalHub(tmp_path / "hub") as calm:  # the same data, no faults: what landed
        api = hub_api(calm.url, token)
        history = api.list_repo_commits("alice/flaky")
        assert [c.title for c in history] == ["Add pt, tf, flax weights (tensorferry)", "initial commit"]
        assert history[0].commit_id == result.commit_oid
        assert {"model.safetensors", "tf_model.h5", "flax_model.msgpack", "README.md"} <= set(api.list_repo_files("alice/flaky"))
