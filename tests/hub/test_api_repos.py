"""Repository-level client methods against the local Hub: whoami, create/delete, info, listing,
refs, branches, tags, commits, settings and the error mapping the client relies on."""
from __future__ import annotations

import pytest
from huggingface_hub import CommitOperationAdd, HfApi
from huggingface_hub.errors import (BadRequestError, HfHubHTTPError, RepositoryNotFoundError,
                                    RevisionNotFoundError)

from .hub_helpers import unique


def test_whoami_lists_orgs(api: HfApi) -> None:
    me = api.whoami()
    assert me["name"] == "alice"
    assert [o["name"] for o in me["orgs"]] == ["acme"]


def test_whoami_rejects_a_bad_token(hub) -> None:
    with pytest.raises(HfHubHTTPError) as e:
        HfApi(endpoint=hub.url, token="hf_not_a_real_token").whoami()
    assert e.value.response.status_code == 401


def test_create_repo_exist_ok_and_conflict(api: HfApi, hub) -> None:
    repo_id = f"alice/{unique()}"
    url = api.create_repo(repo_id)
    assert url == f"{hub.url}/{repo_id}" and url.repo_id == repo_id
    assert api.create_repo(repo_id, exist_ok=True).repo_id == repo_id
    with pytest.raises(HfHubHTTPError) as e:
        api.create_repo(repo_id)
    assert e.value.response.status_code == 409
    # The Hub starts every repo with a .gitattributes commit on main.
    info = api.model_info(repo_id)
    assert [s.rfilename for s in info.siblings] == [".gitattributes"]
    assert len(info.sha) == 40 and info.private is False


def test_create_repo_in_org_and_foreign_namespace(api: HfApi, users, hub) -> None:
    repo_id = f"acme/{unique()}"
    api.create_repo(repo_id)
    assert api.repo_exists(repo_id)
    # carol is in acme too: she may write there; bob is not.
    HfApi(endpoint=hub.url, token=users.carol).upload_file(
        path_or_fileobj=b"by carol\n", path_in_repo="carol.txt", repo_id=repo_id)
    with pytest.raises(HfHubHTTPError) as e:
        HfApi(endpoint=hub.url, token=users.bob).create_repo(f"acme/{unique()}")
    assert e.value.response.status_code == 403


def test_other_repo_types_get_a_clear_400(api: HfApi) -> None:
    with pytest.raises(BadRequestError, match="Only model repositories"):
        api.create_repo(f"alice/{unique()}", repo_type="dataset")


def test_delete_repo(api: HfApi, repo: str) -> None:
    api.delete_repo(repo)
    assert not api.repo_exists(repo)
    with pytest.raises(RepositoryNotFoundError):
        api.delete_repo(repo)
    api.delete_repo(repo, missing_ok=True)


def test_model_info_at_revision_with_card_data(api: HfApi, repo: str) -> None:
    first = api.model_info(repo).sha
    card = "---\nlicense: apache-2.0\nlibrary_name: transformers\ntags:\n- tensorferry\n---\n# Card\n"
    api.upload_file(path_or_fileobj=card.encode(), path_in_repo="README.md", repo_id=repo)
    info = api.model_info(repo, files_metadata=True)
    assert info.sha != first
    assert info.card_data["license"] == "apache-2.0"
    assert "tensorferry" in info.tags and "license:apache-2.0" in info.tags
    readme = next(s for s in info.siblings if s.rfilename == "README.md")
    assert readme.size == len(card) and readme.blob_id and readme.lfs is None
    old = api.model_info(repo, revision=first)
    assert old.sha == first and [s.rfilename for s in old.siblings] == [".gitattributes"]
    assert api.model_info(repo, revision=first[:7]).sha == first
    with pytest.raises(RevisionNotFoundError):
        api.model_info(repo, revision="no-such-branch")


def test_list_models_author_search_and_paging(api: HfApi) -> None:
    tag = unique("lm")
    ids = sorted(f"acme/{tag}-{i}" for i in range(5))
    for repo_id in ids:
        api.create_repo(repo_id)
    found = [m.id for m in api.list_models(search=tag)]  # 5 results over 3-item pages
    assert sorted(found) == ids
    assert all(m.id.startswith("acme/") for m in api.list_models(author="acme"))
    assert len(list(api.list_models(search=tag, limit=2))) == 2
    assert list(api.list_models(author="nobody-here")) == []


def test_refs_branches_and_tags(api: HfApi, repo: str) -> None:
    api.create_branch(repo, branch="dev")
    api.create_branch(repo, branch="dev", exist_ok=True)
    with pytest.raises(HfHubHTTPError) as e:
        api.create_branch(repo, branch="dev")
    assert e.value.response.status_code == 409
    api.upload_file(path_or_fileobj=b"dev only\n", path_in_repo="dev.txt", repo_id=repo, revision="dev")
    api.create_tag(repo, tag="v1.0", revision="dev", tag_message="first")
    with pytest.raises(HfHubHTTPError):
        api.create_tag(repo, tag="v1.0")
    api.create_tag(repo, tag="v1.0", exist_ok=True)
    refs = api.list_repo_refs(repo)
    assert {b.name for b in refs.branches} == {"main", "dev"}
    assert [t.name for t in refs.tags] == ["v1.0"] and refs.converts == []
    dev_sha = next(b.target_commit for b in refs.branches if b.name == "dev")
    assert refs.tags[0].target_commit == dev_sha
    assert "dev.txt" in api.list_repo_files(repo, revision="v1.0")
    assert "dev.txt" not in api.list_repo_files(repo)
    assert api.revision_exists(repo, "refs/heads/dev") and api.revision_exists(repo, "refs/tags/v1.0")
    api.delete_tag(repo, tag="v1.0")
    api.delete_branch(repo, branch="dev")
    refs = api.list_repo_refs(repo)
    assert [b.name for b in refs.branches] == ["main"] and refs.tags == []
    assert not api.revision_exists(repo, "dev")


def test_list_repo_commits_paged(api: HfApi, repo: str) -> None:
    for i in range(4):
        api.create_commit(repo, [CommitOperationAdd(f"f{i}.txt", f"{i}\n".encode())],
                          commit_message=f"add f{i}", commit_description=f"body {i}")
    commits = api.list_repo_commits(repo)  # 5 commits over 3-item pages
    assert [c.title for c in commits] == ["add f3", "add f2", "add f1", "add f0", "initial commit"]
    assert commits[0].message == "body 3" and commits[0].authors == ["alice"]
    assert commits[0].commit_id == api.model_info(repo).sha
    formatted = api.list_repo_commits(repo, formatted=True)
    assert formatted[0].formatted_title == "add f3"


def test_visibility_settings(api: HfApi, users, hub) -> None:
    repo_id = f"alice/{unique()}"
    api.create_repo(repo_id, private=True)
    bob = HfApi(endpoint=hub.url, token=users.bob)
    assert api.model_info(repo_id).private is True
    assert not bob.repo_exists(repo_id)
    api.update_repo_settings(repo_id, private=False)
    assert bob.model_info(repo_id).private is False


def test_unknown_route_is_a_json_404(api: HfApi, hub) -> None:
    from huggingface_hub.utils import get_session

    r = get_session().get(f"{hub.url}/api/nothing-here")
    assert r.status_code == 404 and r.json()["error"].startswith("Not found")
