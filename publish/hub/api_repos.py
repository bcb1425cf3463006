"""Account and repository endpoints: whoami, create/delete/settings, info, listing, refs, commits,
branches, tags and YAML validation.

Each handler is `async (ctx, request, **path_params) -> Response`; `server.py` routes to them.
"""
from __future__ import annotations

import functools
import sqlite3
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from .auth import HubContext, check_name
from .blobs import lfs_pointer
from .bodies import field, read_json, text
from .cards import CardError, card_data, card_tags, split_card
from .errors import ApiError, bad_request, forbidden, repo_not_found
from .names import check_ref_name
from .responses import base_url, error_response, iso, json_response, paged
from .storage import Repo


def readme_meta(ctx: HubContext, files: dict[str, list[Any]]) -> dict[str, Any]:
    entry = files.get("README.md")
    if not entry or entry[2] or entry[1] > 1 << 20:
        return {}
    return _card_data(ctx.store.blobs.regular_path(entry[0]))


@functools.lru_cache(maxsize=256)
def _card_data(path: Path) -> dict[str, Any]:
    # Keyed by the README's content-addressed path: parsed once per distinct card, never stale.
    return card_data(path.read_text("utf-8", errors="replace"))


def repo_json(ctx: HubContext, request: Request, repo: Repo, cid: str, full: bool = True) -> dict[str, Any]:
    """The `model_info` body: ids, dates, card data and `siblings` with sizes and LFS info."""
    files = ctx.store.tree_files(cid)
    commit = ctx.store.commit_row(cid)
    meta = readme_meta(ctx, files)
    out: dict[str, Any] = {
        "_id": f"{repo.id:024x}", "id": repo.repo_id, "modelId": repo.repo_id, "author": repo.namespace,
        "sha": cid, "lastModified": iso(commit["created_at"]), "createdAt": iso(repo.created_at),
        "private": repo.private, "disabled": False, "gated": False, "downloads": 0, "likes": 0,
        "tags": card_tags(meta), "library_name": meta.get("library_name"),
        "pipeline_tag": meta.get("pipeline_tag"), "cardData": meta,
    }
    if full:
        siblings = []
        for path, (sha1, size, lfs) in sorted(files.items()):
            item: dict[str, Any] = {"rfilename": path}
            if (request.query_params.get("blobs") or "").lower() in ("1", "true"):
                item.update(size=size, blobId=sha1)
                if lfs:
                    item["lfs"] = {"size": size, "sha256": lfs, "pointerSize": len(lfs_pointer(lfs, size))}
            siblings.append(item)
        out["siblings"] = siblings
        out["usedStorage"] = sum(v[1] for v in files.values())
    return out


async def whoami(ctx: HubContext, request: Request) -> Response:
    user = ctx.user(request, required=True)
    orgs = [{"type": "org", "name": o, "fullname": o, "roleInOrg": "write"} for o in ctx.store.orgs_of(user or "")]
    return json_response({
        "type": "user", "id": user, "name": user, "fullname": user, "email": None, "emailVerified": False,
        "isPro": False, "canPay": False, "orgs": orgs,
        "auth": {"type": "access_token", "accessToken": {"displayName": "tensorferry local hub", "role": "write"}},
    })


def _target(data: dict[str, Any], user: str) -> tuple[str, str, str]:
    rtype = text(data, "type") or "model"
    if rtype not in ("model", "dataset", "space"):
        raise bad_request(f"Unknown repo type {rtype!r}")
    if rtype != "model":
        raise bad_request(f"Only model repositories are supported by this server (got {rtype})")
    name = check_name(text(data, "name"), "repository")
    namespace = check_name(text(data, "organization") or user, "namespace")
    return rtype, namespace, name


async def create_repo(ctx: HubContext, request: Request) -> Response:
    user = ctx.user(request, required=True) or ""
    data = await read_json(request, ctx.body_timeout)
    rtype, namespace, name = _target(data, user)
    private = text(data, "visibility") == "private" or field(data, "private", bool) is True
    url = f"{base_url(request)}/{namespace}/{name}"
    if not ctx.can_write(user, namespace):
        raise forbidden(f"You don't have the rights to create a model under the namespace {namespace!r}")
    if ctx.store.get_repo(rtype, namespace, name):
        # The client's exist_ok path reads `url` from this 409 body.
        return error_response(ApiError(409, "You already created this model repo", "RepoExists"),
                              extra={"url": url})
    try:
        repo = ctx.store.create_repo(rtype, namespace, name, private, user)
    except sqlite3.IntegrityError:
        return error_response(ApiError(409, "You already created this model repo", "RepoExists"),
                              extra={"url": url})
    return json_response({"url": url, "name": repo.repo_id, "id": f"{repo.id:024x}"})


async def delete_repo(ctx: HubContext, request: Request) -> Response:
    user = ctx.user(request, required=True) or ""
    data = await read_json(request, ctx.body_timeout)
    rtype, namespace, name = _target(data, user)
    repo = ctx.store.get_repo(rtype, namespace, name)
    allowed = ctx.can_write(user, namespace)
    if repo is None or (repo.private and not allowed):
        raise repo_not_found(f"{namespace}/{name}")
    if not allowed:
        raise forbidden(f"You don't have the rights to delete {namespace}/{name}")
    ctx.store.delete_repo(repo)
    return json_response({})


async def settings(ctx: HubContext, request: Request, t: str, ns: str, name: str) -> Response:
    repo, _ = ctx.repo(request, t, ns, name, write=True)
    data = await read_json(request, ctx.body_timeout)
    private = field(data, "private", bool)
    visibility = text(data, "visibility")
    if visibility:
        if visibility not in ("private", "public"):
            raise bad_request(f"visibility must be 'private' or 'public', got {visibility!r}")
        private = visibility == "private"
    if private is not None:
        ctx.store.set_private(repo, bool(private))
    return json_response({"private": bool(private) if private is not None else repo.private})


async def repo_info(ctx: HubContext, request: Request, t: str, ns: str, name: str,
                    rev: str = "main") -> Response:
    repo, _ = ctx.repo(request, t, ns, name)
    cid = ctx.store.resolve(repo, rev)
    return json_response(repo_json(ctx, request, repo, cid))


async def list_models(ctx: HubContext, request: Request, t: str) -> Response:
    if t != "model":
        raise bad_request(f"Only model repositories are supported by this server (got {t}s)")
    qp = request.query_params
    user = ctx.user(request)
    repos = ctx.store.list_repos("model", ctx.namespaces(user))
    if author := qp.get("author"):
        repos = [r for r in repos if r.namespace == author]
    if search := qp.get("search"):
        repos = [r for r in repos if search.lower() in r.repo_id.lower()]
    items = []
    wanted_tags = qp.getlist("filter")
    for r in repos:
        cid = ctx.store.ref(r, "refs/heads/main")
        if cid is None:
            continue
        info = repo_json(ctx, request, r, cid, full=qp.get("full") in ("true", "True", "1"))
        if all(tag in info["tags"] for tag in wanted_tags):
            items.append(info)
    sort = qp.get("sort")
    if sort in ("lastModified", "createdAt", "last_modified", "created_at"):
        key = "lastModified" if sort.startswith("last") else "createdAt"
        items.sort(key=lambda i: i[key], reverse=qp.get("direction") != "1")
    page, headers = paged(request, items, ctx.page_size)
    return json_response(page, headers=headers)


async def list_refs(ctx: HubContext, request: Request, t: str, ns: str, name: str) -> Response:
    repo, _ = ctx.repo(request, t, ns, name)
    out: dict[str, list[dict[str, str]]] = {"branches": [], "converts": [], "tags": []}
    prs = []
    for ref, cid in ctx.store.refs(repo).items():
        for prefix, key in (("refs/heads/", "branches"), ("refs/tags/", "tags")):
            if ref.startswith(prefix):
                out[key].append({"name": ref[len(prefix):], "ref": ref, "targetCommit": cid})
        if ref.startswith("refs/pr/"):
            prs.append({"name": ref[len("refs/pr/"):], "ref": ref, "targetCommit": cid})
    if request.query_params.get("include_prs") in ("1", "true", "True"):
        out["pullRequests"] = sorted(prs, key=lambda p: int(p["name"]))
    return json_response(out)


def commit_json(row: sqlite3.Row, formatted: bool = False) -> dict[str, Any]:
    item: dict[str, Any] = {"id": row["id"], "title": row["title"], "message": row["message"],
                            "date": iso(row["created_at"]), "authors": [{"user": row["author"], "avatar": None}]}
    if formatted:
        item["formatted"] = {"title": row["title"], "message": row["message"]}
    return item


async def list_commits(ctx: HubContext, request: Request, t: str, ns: str, name: str, rev: str) -> Response:
    repo, _ = ctx.repo(request, t, ns, name)
    history = ctx.store.history(ctx.store.resolve(repo, rev))
    page, headers = paged(request, history, ctx.page_size)
    formatted = "formatted" in request.query_params.getlist("expand[]") + request.query_params.getlist("expand")
    return json_response([commit_json(r, formatted) for r in page], headers=headers)


async def branch(ctx: HubContext, request: Request, t: str, ns: str, name: str, branch: str) -> Response:
    repo, _ = ctx.repo(request, t, ns, name, write=True)
    ref = f"refs/heads/{branch}"
    if request.method == "DELETE":
        if branch == "main":
            raise forbidden("Cannot delete the default branch")
        if ctx.store.ref(repo, ref) is None:
            raise ApiError(404, f"Branch {branch} not found", "RevisionNotFound")
        ctx.store.set_ref(repo, ref, None)
        return json_response({})
    check_ref_name(branch, "branch")
    if branch.startswith("refs/"):
        raise bad_request(f"Invalid branch name {branch!r}: give the name without refs/")
    data = await read_json(request, ctx.body_timeout)
    start = ctx.store.resolve(repo, text(data, "startingPoint") or "main")
    ctx.store.set_ref(repo, ref, start, must_be_new=True)
    return json_response({})


async def tag(ctx: HubContext, request: Request, t: str, ns: str, name: str, rev: str) -> Response:
    repo, _ = ctx.repo(request, t, ns, name, write=True)
    if request.method == "DELETE":  # here the path holds the tag itself
        if ctx.store.ref(repo, f"refs/tags/{rev}") is None:
            raise ApiError(404, f"Tag {rev} not found", "RevisionNotFound")
        ctx.store.set_ref(repo, f"refs/tags/{rev}", None)
        return json_response({})
    data = await read_json(request, ctx.body_timeout)
    tag_name = check_ref_name(data.get("tag"), "tag")
    if tag_name.startswith("refs/"):
        raise bad_request(f"Invalid tag name {tag_name!r}: give the name without refs/")
    ctx.store.set_ref(repo, f"refs/tags/{tag_name}", ctx.store.resolve(repo, rev), must_be_new=True)
    return json_response({})


async def validate_yaml(ctx: HubContext, request: Request) -> Response:
    # The client parses this body before checking the status: it must be JSON every time.
    try:
        data = await read_json(request, ctx.body_timeout)
        await run_in_threadpool(split_card, text(data, "content"))
    except CardError as e:
        return json_response({"errors": [{"message": str(e)}], "warnings": []}, status=400)
    except ApiError as e:
        return json_response({"errors": [{"message": e.message}], "warnings": []}, status=e.status)
    return json_response({"errors": [], "warnings": []})

