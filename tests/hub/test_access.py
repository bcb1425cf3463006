"""Who may read and write: private-repo isolation between two users, anonymous reads of public
repos, 403 on foreign writes, 401 on bad tokens; and tokens never show up in the server log."""
from __future__ import annotations

from pathlib import Path

import pytest
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

from .hub_helpers import unique


def test_private_repo_isolation_between_two_users(hub, users, tmp_path: Path) -> None:
    alice = HfApi(endpoint=hub.url, token=users.alice)
    bob = HfApi(endpoint=hub.url, token=users.bob)
    a_repo, b_repo = f"alice/{unique('secret')}", f"bob/{unique('secret')}"
    alice.create_repo(a_repo, private=True)
    bob.create_repo(b_repo, private=True)
    alice.upload_file(path_or_fileobj=b"alice's\n", path_in_repo="s.txt", repo_id=a_repo)
    bob.upload_file(path_or_fileobj=b"bob's\n", path_in_repo="s.txt", repo_id=b_repo)

    for api, own, other in ((alice, a_repo, b_repo), (bob, b_repo, a_repo)):
        assert api.model_info(own).private is True
        assert not api.repo_exists(other)
        with pytest.raises(RepositoryNotFoundError):
            api.model_info(other)
        with pytest.raises(RepositoryNotFoundError):
            list(api.list_repo_tree(other))
        with pytest.raises(RepositoryNotFoundError):
            hf_hub_download(other, "s.txt", endpoint=hub.url, token=api.token, cache_dir=tmp_path)
        with pytest.raises(RepositoryNotFoundError):
            api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=other)
        with pytest.raises(RepositoryNotFoundError):
            api.delete_repo(other)
        listed = {m.id for m in api.list_models(search="secret")}
        assert own in listed and other not in listed
    assert Path(hf_hub_download(a_repo, "s.txt", endpoint=hub.url, token=users.alice,
                                cache_dir=tmp_path)).read_bytes() == b"alice's\n"


def test_anonymous_reads_public_only(api: HfApi, hub, repo: str, tmp_path: Path) -> None:
    api.upload_file(path_or_fileobj=b"public\n", path_in_repo="p.txt", repo_id=repo)
    private = f"alice/{unique()}"
    api.create_repo(private, private=True)
    anon = HfApi(endpoint=hub.url, token=False)
    assert anon.model_info(repo).id == repo
    got = hf_hub_download(repo, "p.txt", endpoint=hub.url, token=False, cache_dir=tmp_path)
    assert Path(got).read_bytes() == b"public\n"
    assert not anon.repo_exists(private)
    assert private not in {m.id for m in anon.list_models(author="alice")}
    with pytest.raises(HfHubHTTPError):  # no token at all: the client refuses locally or the server 401s
        anon.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=repo)


def test_foreign_write_to_public_repo_is_403(hub, users, repo: str) -> None:
    bob = HfApi(endpoint=hub.url, token=users.bob)
    for action in (lambda: bob.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=repo),
                   lambda: bob.create_branch(repo, branch="evil"),
                   lambda: bob.delete_repo(repo),
                   lambda: bob.create_pull_request(repo, title="from bob")):
        with pytest.raises(HfHubHTTPError) as e:
            action()
        assert e.value.response.status_code == 403
    assert "x.txt" not in HfApi(endpoint=hub.url, token=users.alice).list_repo_files(repo)


def test_bad_token_is_401_not_anonymous(hub, repo: str) -> None:
    bad = HfApi(endpoint=hub.url, token="hf_definitely_wrong")
    with pytest.raises(HfHubHTTPError) as e:
        bad.model_info(repo)
    assert e.value.response.status_code == 401
    assert "hf_definitely_wrong" not in str(e.value)


def test_tokens_are_stored_hashed_and_never_logged(hub, users, api: HfApi, repo: str) -> None:
    api.upload_file(path_or_fileobj=b"log check\n", path_in_repo="l.txt", repo_id=repo)
    db = b"".join(p.read_bytes() for p in hub.data_dir.glob("hub.sqlite3*"))  # database, WAL and shm
    log = hub.log_path.read_text(errors="replace")
    page = __import__("huggingface_hub.utils", fromlist=["get_session"]).get_session().get(f"{hub.url}/{repo}").text
    for token in (users.alice, users.bob, users.carol):
        assert token.encode() not in db and token not in log and token not in page
