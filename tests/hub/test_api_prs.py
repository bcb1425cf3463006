"""Pull requests and discussions: create_pr commits, pushes to refs/pr/N, details, comments,
status changes and merges (including a conflicting one)."""
from __future__ import annotations

from pathlib import Path

import pytest
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError


def test_create_pr_push_and_merge(api: HfApi, hub, repo: str, tmp_path: Path) -> None:
    api.upload_file(path_or_fileobj=b"keep\n", path_in_repo="keep.txt", repo_id=repo)
    api.upload_file(path_or_fileobj=b"old\n", path_in_repo="gone.txt", repo_id=repo)
    main_before = api.model_info(repo).sha
    big = b"\x00weights" * 200_000  # binary: goes through LFS, also inside a PR
    commit = api.create_commit(repo, [CommitOperationAdd("w.bin", big), CommitOperationDelete("gone.txt")],
                               commit_message="Add weights", commit_description="please merge", create_pr=True)
    assert commit.pr_num == 1 and commit.pr_revision == "refs/pr/1"
    assert commit.pr_url == f"{hub.url}/{repo}/discussions/1"
    assert api.model_info(repo).sha == main_before  # main untouched until merged
    # A second push to the PR branch.
    api.upload_file(path_or_fileobj=b"more\n", path_in_repo="more.txt", repo_id=repo, revision="refs/pr/1")
    assert set(api.list_repo_files(repo, revision="refs/pr/1")) == {".gitattributes", "keep.txt", "w.bin", "more.txt"}
    got = hf_hub_download(repo, "w.bin", revision="refs/pr/1", endpoint=hub.url, token=api.token, cache_dir=tmp_path)
    assert Path(got).read_bytes() == big
    assert (tmp_path / f"models--{repo.replace('/', '--')}" / "refs" / "refs" / "pr" / "1").is_file()

    refs = api.list_repo_refs(repo, include_pull_requests=True)
    assert [(p.name, p.ref) for p in refs.pull_requests] == [("1", "refs/pr/1")]
    listed = list(api.get_repo_discussions(repo))
    assert [(d.num, d.title, d.is_pull_request, d.status) for d in listed] == [(1, "Add weights", True, "open")]
    details = api.get_discussion_details(repo, 1)
    assert details.target_branch == "main" and details.conflicting_files == []
    assert details.events[0].content == "please merge"
    assert [e.summary for e in details.events if e.type == "commit"] == ["Add weights", "Upload more.txt with huggingface_hub"]
    api.comment_discussion(repo, 1, "looks good")

    api.merge_pull_request(repo, 1)  # empty body: no comment
    merged = api.get_discussion_details(repo, 1)
    assert merged.status == "merged" and merged.merge_commit_oid == api.model_info(repo).sha
    assert set(api.list_repo_files(repo)) == {".gitattributes", "keep.txt", "w.bin", "more.txt"}
    assert api.list_repo_commits(repo)[0].title == "Merge pull request #1: Add weights"
    with pytest.raises(HfHubHTTPError):
        api.upload_file(path_or_fileobj=b"late\n", path_in_repo="late.txt", repo_id=repo, revision="refs/pr/1")


def test_discussions_status_and_conflicting_merge(api: HfApi, repo: str) -> None:
    api.upload_file(path_or_fileobj=b"base\n", path_in_repo="x.txt", repo_id=repo)
    disc = api.create_discussion(repo, title="A question", description="why?")
    assert disc.num == 1 and not disc.is_pull_request
    pr = api.create_pull_request(repo, title="Change x", description="edit")
    assert pr.num == 2 and pr.git_reference == "refs/pr/2"
    api.upload_file(path_or_fileobj=b"from pr\n", path_in_repo="x.txt", repo_id=repo, revision=pr.git_reference)
    api.upload_file(path_or_fileobj=b"from main\n", path_in_repo="x.txt", repo_id=repo)
    assert api.get_discussion_details(repo, 2).conflicting_files == ["x.txt"]
    with pytest.raises(HfHubHTTPError) as e:
        api.merge_pull_request(repo, 2, comment="try")
    assert e.value.response.status_code == 409
    status = api.change_discussion_status(repo, 2, new_status="closed", comment="conflicts")
    assert status.new_status == "closed"
    assert [d.num for d in api.get_repo_discussions(repo, discussion_status="open")] == [1]
    assert [d.num for d in api.get_repo_discussions(repo, discussion_type="pull_request")] == [2]
    api.change_discussion_status(repo, 2, new_status="open")
    assert api.get_discussion_details(repo, 2).status == "open"
