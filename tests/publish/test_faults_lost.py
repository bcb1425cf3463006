"""Lost answers: the Hub carries a commit out, then the connection drops before the answer arrives.

A retry must find out that its commit landed (by the run id tensorferry puts in the description)
rather than commit again, or open a second pull request.
"""
from __future__ import annotations

import pytest

from tensorferry.fixtures import checkpoint_dir
from tensorferry.publish import publish
from tensorferry.publish.hub.local import LocalHub, write_token
from tensorferry.publish.hub_io import hub_api


@pytest.mark.parametrize("create_pr", [False, True], ids=["commit", "pull request"])
def test_a_lost_answer_never_duplicates_the_commit_or_the_pull_request(tmp_path, create_pr) -> None:
    # Every commit lands and its answer is lost: only finding our run id can end this without a duplicate.
    with LocalHub(tmp_path / "hub", env={"TENSORFERRY_HUB_FAULTS": "lost@/commit/:1.0"}) as server:
        token = write_token(server.data_dir, "alice")
        hub_api(server.url, token).create_repo("alice/lost", exist_ok=True) if create_pr else None
        result = publish(checkpoint_dir("cnn"), "alice/lost", endpoint=server.url, token=token, verify="weights",
                         create_pr=create_pr, quiet=True)
    log = (tmp_path / "hub" / "server.log").read_text()
    assert log.count("fault injected: lost on POST /api/models/alice/lost/commit/") == 1  # the answer was lost
    with LocalHub(tmp_path / "hub") as calm:
        api = hub_api(calm.url, token)
        if create_pr:
            prs = list(api.get_repo_discussions("alice/lost", discussion_type="pull_request"))
            assert [d.num for d in prs] == [1] and result.pr_url.endswith("/discussions/1")
            assert len(api.list_repo_commits("alice/lost", revision="refs/pr/1")) == 2
            assert [c.title for c in api.list_repo_commits("alice/lost")] == ["initial commit"]
        else:
            titles = [c.title for c in api.list_repo_commits("alice/lost")]
            assert titles == ["Add pt, tf, flax weights (tensorferry)", "initial commit"]
            assert api.list_repo_commits("alice/lost")[0].commit_id == result.commit_oid


def test_a_pull_request_still_in_flight_when_its_answer_was_lost_is_awaited_not_opened_again(tmp_path) -> None:
    """The connection drops at once and the commit lands 2 s later (``delay:2``): ``parent_commit`` does not
    stop a second PR, so publish must keep looking for its own before it sends the commit again."""
    import time

    delay = 2.0
    with LocalHub(tmp_path / "hub", env={"TENSORFERRY_HUB_FAULTS": f"lost@/commit/:1.0,delay:{delay}"}) as server:
        token = write_token(server.data_dir, "alice")
        api = hub_api(server.url, token)
        api.create_repo("alice/late")
        started = time.monotonic()
        result = publish(checkpoint_dir("cnn"), "alice/late", endpoint=server.url, token=token, verify="weights",
                         create_pr=True, quiet=True)
        waited = time.monotonic() - started
        time.sleep(delay + 1.0)  # any commit sent again would land by now
        log = (tmp_path / "hub" / "server.log").read_text()
        prs = list(api.get_repo_discussions("alice/late", discussion_type="pull_request"))
    assert log.count("fault injected: lost on POST /api/models/alice/late/commit/") == 1  # sent once
    assert [d.num for d in prs] == [1] and result.pr_url.endswith("/discussions/1")
    assert waited >= delay  # it waited for the commit in flight


def test_finding_a_landed_commit_reads_only_the_newest_page_of_the_history(tmp_path) -> None:
    """After a lost answer the newest commit is read by its run id: one page (one commit), not the whole history."""
    from tensorferry.publish.hub_io import Hub
    from tensorferry.publish.committing import landed, newest_commit

    with LocalHub(tmp_path / "hub", page_size=1, log_level="info") as server:
        token = write_token(server.data_dir, "alice")
        api = hub_api(server.url, token)
        api.create_repo("alice/long")
        for i in range(4):
            api.upload_file(path_or_fileobj=f"{i}\n".encode(), path_in_repo="n.txt", repo_id="alice/long",
                            commit_message=f"step {i}", commit_description="<!-- tensorferry publish abc -->" if i == 3 else None)
        parent = api.list_repo_commits("alice/long")[1].commit_id
        log = tmp_path / "hub" / "server.log"
        before = log.read_text().count("/api/models/alice/long/commits/")
        hub = Hub(server.url, token)
        found = landed(hub.api(), hub, "alice/long", "main", parent, "<!-- tensorferry publish abc -->", False, 0)
        after = log.read_text().count("/api/models/alice/long/commits/")
        assert before >= 4 and after - before == 1  # one request: the first page only (of 5)

        newest = newest_commit(hub, "alice/long", "main")
    assert found is not None and found[1] == newest["id"] and newest["title"] == "step 3"
