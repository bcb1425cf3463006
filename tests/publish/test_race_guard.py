"""``publish(before_commit=...)``, the race guard of ``tensorferry batch``: it must run as late as it can,
after the LFS files are uploaded and right before the commit call, so that the window in which a
duplicate PR can slip past it does not span the whole upload."""
from __future__ import annotations

import pytest

from tensorferry.fixtures import checkpoint_dir
from tensorferry.publish import publish
from tensorferry.publish.hub.blobs import BlobStore

from .conftest import commits


def test_the_race_guard_runs_after_the_lfs_upload_and_right_before_the_commit(hub) -> None:
    repo = hub.repo("guard")
    hub.api().create_repo(repo)
    store = BlobStore(hub.data_dir)  # the server's own object store, read only
    seen = {}

    def guard(result) -> None:
        lfs = [f for f in result.files if f.action != "unchanged" and f.digest is not None]
        seen["lfs"] = len(lfs)
        seen["uploaded"] = [store.has_lfs(f.digest.sha256) for f in lfs]
        seen["commits"] = len(commits(hub, repo))
        raise RuntimeError("a PR appeared meanwhile")

    with pytest.raises(RuntimeError, match="a PR appeared meanwhile"):
        publish(checkpoint_dir("cnn"), repo, endpoint=hub.url, token=hub.token, verify="weights", create_pr=True,
                quiet=True, before_commit=guard)
    assert seen["lfs"] >= 2 and all(seen["uploaded"]), seen  # the converted variants were already on the Hub
    assert seen["commits"] == 1 and len(commits(hub, repo)) == 1  # and nothing was committed, before or after
    assert not list(hub.api().get_repo_discussions(repo, discussion_type="pull_request"))
