"""Hostile names against the local Hub: ref names git forbids, file paths with control
characters, file/folder clashes. Every case asserts the status and message, then that the server
is still healthy. A fresh server per module: a hostile test must not poison the shared one."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator
from urllib.parse import quote

import pytest
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import HfHubHTTPError, RevisionNotFoundError

from .hub_helpers import assert_healthy, error_of, ndjson, raw, unique
from tensorferry.publish.hub import LocalHub, create_token

# Each is refused by `git check-ref-format --allow-onelevel` or by the Hub's own rules (HEAD, `-x`,
# a 40-hex name the client's cache would take for a commit id, names longer than a file name).
BAD_REFS = ["../../x", "a..b", "a b", "HEAD", "a@{1}", "-x", "x~1", "x\ny", "x\ry", "x\ty", "x\x7f",
            "x^", "x:y", "x?", "x*", "x[1]", "x\\y", "x/", "/x", "x//y", ".x", "x/.y", "x.lock",
            "x/y.lock", "x.", "@", "a" * 256, "0123456789abcdef0123456789abcdef01234567"]
GOOD_REFS = ["dev", "feature/x-1", "v1.0", "release/2024.01", "a@b", "ünï", "x{y}", "a.b.c"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalHub, str]]:
    data = tmp_path_factory.mktemp("hostile-refs")
    with LocalHub(data) as hub:
        yield hub, create_token(data, "mallory")


@pytest.fixture
def repo(server: tuple[LocalHub, str]) -> str:
    hub, token = server
    repo_id = f"mallory/{unique()}"
    HfApi(endpoint=hub.url, token=token).create_repo(repo_id)
    return repo_id


def _status(exc: pytest.ExceptionInfo[HfHubHTTPError]) -> int:
    return exc.value.response.status_code


@pytest.mark.parametrize("name", BAD_REFS, ids=repr)
def test_bad_branch_and_tag_names_are_refused(server, repo: str, name: str) -> None:
    hub, token = server
    api = HfApi(endpoint=hub.url, token=token)
    with pytest.raises(HfHubHTTPError) as e:
        api.create_branch(repo, branch=name)
    assert _status(e) == 400 and "Invalid branch name" in str(e.value)
    with pytest.raises(HfHubHTTPError) as e:
        api.create_tag(repo, tag=name)
    assert _status(e) == 400 and "Invalid tag name" in str(e.value)
    refs = api.list_repo_refs(repo)
    assert [b.name for b in refs.branches] == ["main"] and refs.tags == []
    assert_healthy(hub.url)


def test_tag_names_must_be_encodable_strings(server, repo: str) -> None:
    hub, token = server
    for tag in ("\ud800x", 12, ["v1"], {"a": 1}, None, ""):
        status, _, out = raw(hub.url, "POST", f"/api/models/{repo}/tag/main", json.dumps({"tag": tag}), token,
                             {"Content-Type": "application/json"})
        # A lone surrogate is already refused by the JSON reader, for every endpoint.
        assert status == 400 and ("Invalid tag name" in error_of(out) or "lone surrogate" in error_of(out)), out
    assert HfApi(endpoint=hub.url, token=token).list_repo_refs(repo).tags == []


def test_good_ref_names_still_work(server, repo: str) -> None:
    hub, token = server
    api = HfApi(endpoint=hub.url, token=token)
    for name in GOOD_REFS:
        api.create_branch(repo, branch=name)
        api.create_tag(repo, tag=f"t-{name}")
        api.upload_file(path_or_fileobj=name.encode(), path_in_repo="f.txt", repo_id=repo, revision=name)
    refs = api.list_repo_refs(repo)
    assert {b.name for b in refs.branches} == {"main", *GOOD_REFS}
    assert {t.name for t in refs.tags} == {f"t-{n}" for n in GOOD_REFS}


@pytest.mark.parametrize("name", ["../../x", "a b", "HEAD", "x~1", "x\ny", "-x", "refs/heads/../x"], ids=repr)
def test_commit_and_create_pr_refuse_bad_revisions(server, repo: str, name: str) -> None:
    hub, token = server
    body = ndjson({"key": "header", "value": {"summary": "s"}},
                  {"key": "file", "value": {"path": "a.txt", "content": "YQ==", "encoding": "base64"}})
    for query in ("", "?create_pr=1"):
        status, _, out = raw(hub.url, "POST", f"/api/models/{repo}/commit/{quote(name, safe='')}{query}",
                             body, token, {"Content-Type": "application/x-ndjson"})
        assert status == 400, (query, out)
        assert "Invalid revision" in error_of(out)
    assert_healthy(hub.url)


def test_revision_traversal_cannot_make_the_client_write_outside_its_cache(server, repo: str,
                                                                          tmp_path: Path) -> None:
    hub, token = server
    api = HfApi(endpoint=hub.url, token=token)
    api.upload_file(path_or_fileobj=b"x\n", path_in_repo="f.txt", repo_id=repo)
    cache = tmp_path / "a" / "b" / "cache"
    escape = "../../../../escaped"
    with pytest.raises(HfHubHTTPError):
        api.create_branch(repo, branch=escape)
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(repo, "f.txt", revision=escape, endpoint=hub.url, token=token, cache_dir=cache)
    assert not list(tmp_path.rglob("escaped"))
    assert {p.name for p in tmp_path.iterdir()} <= {"a"}


BAD_PATHS = ["a\nb.txt", "a\rb.txt", "tab\there", "nul\x00", "bell\x07.txt", "del\x7f", "dir/\x1b[31mred",
             "\ud800.txt", "x/" + "n" * 256, "sub/.git/config", ".GIT/x", "a/../b", "/abs", "back\\slash"]


@pytest.mark.parametrize("path", BAD_PATHS, ids=repr)
def test_bad_file_paths_are_refused_at_commit(server, repo: str, path: str) -> None:
    hub, token = server
    body = ndjson({"key": "header", "value": {"summary": "s"}},
                  {"key": "file", "value": {"path": path, "content": "YQ==", "encoding": "base64"}})
    status, _, out = raw(hub.url, "POST", f"/api/models/{repo}/commit/main", body, token,
                         {"Content-Type": "application/x-ndjson"})
    assert status == 400 and ("Invalid path" in error_of(out) or "lone surrogate" in error_of(out)), out
    preupload = json.dumps({"files": [{"path": path, "sample": "", "size": 1}]})
    status, _, out = raw(hub.url, "POST", f"/api/models/{repo}/preupload/main", preupload, token,
                         {"Content-Type": "application/json"})
    assert status == 400 and ("Invalid path" in error_of(out) or "lone surrogate" in error_of(out)), out
    # The tree is unchanged and still listable.
    assert [f for f in HfApi(endpoint=hub.url, token=token).list_repo_files(repo)] == [".gitattributes"]
    assert_healthy(hub.url)


def test_file_folder_clashes_are_refused(server, repo: str, tmp_path: Path) -> None:
    hub, token = server
    api = HfApi(endpoint=hub.url, token=token)
    api.upload_file(path_or_fileobj=b"file a\n", path_in_repo="a", repo_id=repo)
    with pytest.raises(HfHubHTTPError) as e:  # a file where a folder would go
        api.upload_file(path_or_fileobj=b"b\n", path_in_repo="a/b", repo_id=repo)
    assert _status(e) == 409 and "a/b" in str(e.value) and "is a file" in str(e.value)
    api.upload_file(path_or_fileobj=b"deep\n", path_in_repo="d/e/f.txt", repo_id=repo)
    for clash in ("d", "d/e"):  # a folder where a file would go
        with pytest.raises(HfHubHTTPError) as e:
            api.upload_file(path_or_fileobj=b"x\n", path_in_repo=clash, repo_id=repo)
        assert _status(e) == 409 and "is a folder" in str(e.value)
    with pytest.raises(HfHubHTTPError) as e:  # both inside one commit
        api.create_commit(repo, [CommitOperationAdd("n", b"1"), CommitOperationAdd("n/m", b"2")],
                          commit_message="clash")
    assert _status(e) == 409
    # Replacing the file by a folder in one commit is fine.
    api.create_commit(repo, [CommitOperationDelete("a"), CommitOperationAdd("a/b", b"b\n")], commit_message="ok")
    files = sorted(api.list_repo_files(repo))
    assert files == [".gitattributes", "a/b", "d/e/f.txt"]
    snap = Path(snapshot_download(repo, endpoint=hub.url, token=token, cache_dir=tmp_path))
    assert sorted(str(p.relative_to(snap)) for p in snap.rglob("*") if p.is_file()) == files
    assert_healthy(hub.url)
