"""Writing: preupload, the NDJSON commit endpoint (with `create_pr` and `parentCommit`), and
discussions / pull requests (list, details, create, comment, status, merge)."""
from __future__ import annotations

import base64
import binascii
import fnmatch
import json
import os
import re
import sqlite3
from typing import Any

from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from .auth import HubContext
from .blobs import git_blob_sha1, lfs_pointer
from .bodies import field, objects, read_json, text
from .commit_payload import INLINE_LIMIT, decode_inline, read_lines, spool
from .errors import ApiError, bad_request, forbidden
from .names import check_path
from .responses import base_url, iso, json_response
from .storage import GITATTRIBUTES, Repo, branch_ref

REGULAR_LIMIT = INLINE_LIMIT  # above it, preupload answers LFS: inline lines stay bounded
LFS_PATTERNS = [line.split()[0] for line in GITATTRIBUTES.splitlines() if line]
DISCUSSION_PAGE = 50
Op = tuple[str, str, "list[Any] | None"]
LEGACY_UA = re.compile(r"\bhf_hub/0\.")


def upload_mode(path: str, size: int, sample: bytes) -> str:
    """LFS for big, binary or LFS-pattern files (like the Hub's .gitattributes); regular otherwise."""
    if size == 0:
        return "regular"
    name = path.rsplit("/", 1)[-1]
    if size > REGULAR_LIMIT or b"\0" in sample or any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(path, p)
                                                      for p in LFS_PATTERNS):
        return "lfs"
    return "regular"


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name) in ("1", "true", "True")


async def preupload(ctx: HubContext, request: Request, t: str, ns: str, name: str, rev: str) -> Response:
    repo, _ = ctx.repo(request, t, ns, name, write=True)
    files = ctx.store.tree_files(ctx.store.resolve(repo, rev))
    data = await read_json(request, ctx.body_timeout, "preupload body")
    out = []
    for f in objects(data, "files"):
        path = check_path(f.get("path"))
        try:
            sample = base64.b64decode(text(f, "sample")[:1024])
        except (binascii.Error, ValueError):
            sample = b""
        mode = upload_mode(path, field(f, "size", int, 0), sample)
        item: dict[str, Any] = {"path": path, "uploadMode": mode, "shouldIgnore": False}
        if entry := files.get(path):
            # The client drops a file whose id equals this one: it is unchanged.
            item["oid"] = entry[2] if entry[2] else entry[0]
        out.append(item)
    return json_response({"files": out, "commitOid": None})


def _parse_payload(ctx: HubContext, repo: Repo, spooled: Path) -> tuple[dict[str, Any], list[Op]]:
    header: dict[str, Any] | None = None
    ops = []
    with open(spooled, "rb") as f:
        for key, value in read_lines(f):  # one line in memory at a time
            if key == "header":
                header = value
            else:
                ops.append(_op(ctx, repo, key, value))
    if header is None:
        raise bad_request("Commit payload has no header line")
    return header, ops


def _apply(ctx: HubContext, request: Request, repo: Repo, user: str, rev: str, header: dict[str, Any],
           ops: list[Op]) -> tuple[str, int | None]:
    """One transaction: open the PR if asked, check the parent, write the commit, move the ref."""
    title = header["summary"].strip() or "Upload files"
    message = header["description"]
    store = ctx.store
    with store.tx():
        pr_num = None
        if _flag(request, "create_pr"):
            pr_num = store.create_discussion(repo, title, message, user, True, branch_ref(rev))
            ref = f"refs/pr/{pr_num}"
        else:
            ref = branch_ref(rev)
            if ref.startswith("refs/pr/"):
                d = store.discussion(repo, int(ref.rsplit("/", 1)[1]))
                if d["status"] not in ("open", "draft"):
                    raise forbidden(f"Pull request {d['num']} is {d['status']}: it takes no more commits")
                pr_num = d["num"]
        cid = store.commit(repo, ref, ops, title, message, user, header["parentCommit"])
        if pr_num is not None:
            store.add_event(repo, pr_num, "commit", user, {"subject": title, "oid": cid})
    return cid, pr_num


def _op(ctx: HubContext, repo: Repo, key: str, value: dict[str, Any]) -> Op:
    """A checked line (`commit_payload.parse_line`) → an operation, storing inline content now."""
    path = value["path"]
    if key == "file":
        sha1, size = ctx.store.blobs.put_regular(decode_inline(path, value["content"]))
        return ("add", path, [sha1, size, None])
    if key == "lfsFile":
        oid = value["oid"]
        size = ctx.store.lfs_size(repo, oid)  # a server-side copy sends no size
        if size is None or not ctx.store.blobs.has_lfs(oid):
            raise bad_request(f"LFS object {oid} for {path} was not uploaded to this repository")
        if value["size"] is not None and value["size"] != size:
            raise bad_request(f"Size of {path} does not match its LFS object")
        return ("add", path, [git_blob_sha1(lfs_pointer(oid, size)), size, oid])
    return ("delete" if key == "deletedFile" else "delete_folder", path, None)


async def commit(ctx: HubContext, request: Request, t: str, ns: str, name: str, rev: str) -> Response:
    repo, user = ctx.repo(request, t, ns, name, write=True)
    # Spool the body to disk first: regular files arrive base64-inline and may be large.
    fd, spooled = ctx.store.blobs.tmp_file(".ndjson")
    try:
        with os.fdopen(fd, "wb") as f:
            await spool(request, f)
        # Decoding, hashing and fsyncing blobs, then the SQLite commit, run off the event loop so
        # one large commit does not stall every other client.
        header, ops = await run_in_threadpool(_parse_payload, ctx, repo, spooled)
    finally:
        spooled.unlink(missing_ok=True)
    cid, pr_num = await run_in_threadpool(_apply, ctx, request, repo, user or "", rev, header, ops)
    base = f"{base_url(request)}/{repo.repo_id}"
    # huggingface_hub 0.x parses commitUrl against its global endpoint, not HfApi(endpoint=); it
    # rewrites the canonical huggingface.co form to that endpoint, so it gets that form.
    legacy = LEGACY_UA.search(request.headers.get("user-agent", ""))
    commit_base = f"https://huggingface.co/{repo.repo_id}" if legacy else base
    return json_response({
        "success": True, "commitOid": cid, "commitUrl": f"{commit_base}/commit/{cid}",
        "pullRequestUrl": f"{base}/discussions/{pr_num}" if pr_num is not None and _flag(request, "create_pr") else None,
    })


def discussion_json(repo: Repo, d: sqlite3.Row) -> dict[str, Any]:
    return {"num": d["num"], "title": d["title"], "status": d["status"], "isPullRequest": bool(d["is_pr"]),
            "createdAt": iso(d["created_at"]), "author": {"name": d["author"]}, "pinned": False,
            "repo": {"name": repo.repo_id, "type": repo.type}, "numComments": 0, "topReactions": []}


def event_json(e: sqlite3.Row) -> dict[str, Any]:
    return {"id": f"{e['id']:024x}", "type": e["type"], "createdAt": iso(e["created_at"]),
            "author": {"name": e["author"]}, "data": json.loads(e["data"])}


async def list_discussions(ctx: HubContext, request: Request, t: str, ns: str, name: str) -> Response:
    repo, user = ctx.repo(request, t, ns, name, write=request.method == "POST")
    if request.method == "POST":
        data = await read_json(request, ctx.body_timeout)
        title = text(data, "title").strip()
        if len(title) < 3:
            raise bad_request("Title must be at least 3 characters")
        num = ctx.store.create_discussion(repo, title, text(data, "description"), user or "",
                                          field(data, "pullRequest", bool, False))
        return json_response({"num": num, **discussion_json(repo, ctx.store.discussion(repo, num))})
    qp = request.query_params
    items = ctx.store.discussions(repo)
    kind = qp.get("type", "all")
    if kind in ("discussion", "pull_request"):
        items = [d for d in items if bool(d["is_pr"]) == (kind == "pull_request")]
    status = qp.get("status", "all")
    if status == "open":
        items = [d for d in items if d["status"] in ("open", "draft")]
    elif status == "closed":
        items = [d for d in items if d["status"] in ("closed", "merged")]
    if author := qp.get("author"):
        items = [d for d in items if d["author"] == author]
    start = int(qp.get("p", "0") or 0) * DISCUSSION_PAGE
    page = items[start:start + DISCUSSION_PAGE]
    return json_response({"discussions": [discussion_json(repo, d) for d in page], "count": len(items),
                          "start": start})


async def discussion(ctx: HubContext, request: Request, t: str, ns: str, name: str, num: str) -> Response:
    repo, _ = ctx.repo(request, t, ns, name)
    d = ctx.store.discussion(repo, int(num))
    out = discussion_json(repo, d)
    out["events"] = [event_json(e) for e in ctx.store.events(repo, d["num"])]
    if d["is_pr"]:
        changes, conflicts = ctx.store.pr_changes(repo, d)
        base = d["base_ref"].removeprefix("refs/heads/")
        out["changes"] = {"base": base, **({"mergeCommitId": d["merge_commit"]} if d["merge_commit"] else {})}
        out["filesWithConflicts"] = conflicts
        out["diff"] = "".join(f"{'deleted' if v is None else 'changed'}: {p}\n" for p, v in sorted(changes.items()))
    return json_response(out)


async def discussion_action(ctx: HubContext, request: Request, t: str, ns: str, name: str, num: str,
                            action: str) -> Response:
    repo, user = ctx.repo(request, t, ns, name, write=True)
    n = int(num)
    d = ctx.store.discussion(repo, n)
    data = await read_json(request, ctx.body_timeout)  # merge may come with an empty body and no content type
    comment = text(data, "comment")
    if comment:
        eid = ctx.store.add_event(repo, n, "comment", user or "",
                                  {"edited": False, "hidden": False, "latest": {"raw": comment, "html": ""}})
        if action == "comment":
            return json_response({"newMessage": event_json(ctx.store.events(repo, n)[-1]) | {"id": f"{eid:024x}"}})
    if action == "comment":
        raise bad_request("Comment is empty")
    if action == "merge":
        cid = ctx.store.merge_pr(repo, n, user or "")
        return json_response({"mergeCommitId": cid})
    if action == "status":
        status = data.get("status")
        if status not in ("open", "closed"):
            raise bad_request("status must be 'open' or 'closed'")
        if d["status"] == "merged":
            raise ApiError(409, "A merged pull request cannot change status", "Conflict")
        ctx.store.set_status(repo, n, status)
        eid = ctx.store.add_event(repo, n, "status-change", user or "", {"status": status})
        return json_response({"newStatus": event_json(ctx.store.events(repo, n)[-1]) | {"id": f"{eid:024x}"}})
    raise bad_request(f"Unknown discussion action {action!r}")
