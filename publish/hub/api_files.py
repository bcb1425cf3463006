"""Reading files: tree listing, paths-info and `resolve` (HEAD, GET, Range) with the headers the
client's cache needs (`X-Repo-Commit`, `ETag`, `X-Linked-Etag`, `X-Linked-Size`)."""
from __future__ import annotations

import hashlib
import mimetypes
import re
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from .auth import HubContext
from .blobs import BlobStore, lfs_pointer
from .bodies import JSON_LIMIT, field, parse_json, read_body
from .errors import ApiError, bad_request, entry_not_found
from .responses import error_response, iso, json_response, paged
from .storage import Files, Repo

RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")


def file_item(path: str, entry: list[Any]) -> dict[str, Any]:
    sha1, size, lfs = entry
    item: dict[str, Any] = {"type": "file", "oid": sha1, "size": size, "path": path}
    if lfs:
        item["lfs"] = {"oid": lfs, "size": size, "pointerSize": len(lfs_pointer(lfs, size))}
    return item


def dir_item(path: str, files: Files) -> dict[str, Any]:
    prefix = path + "/"
    digest = hashlib.sha1()
    for p in sorted(p for p in files if p.startswith(prefix)):
        digest.update(f"{p}\0{files[p][0]}\n".encode())
    return {"type": "directory", "oid": digest.hexdigest(), "size": 0, "path": path}


def directories(files: Files) -> set[str]:
    out = set()
    for p in files:
        parts = p.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            out.add("/".join(parts[:i]))
    return out


def tree_items(files: Files, path: str, recursive: bool) -> list[dict[str, Any]]:
    """Entries under `path` ('' is the root): directories first, then files, each sorted."""
    path = path.strip("/")
    dirs = directories(files)
    if path and path not in dirs:
        raise entry_not_found(path)
    prefix = path + "/" if path else ""

    def wanted(p: str) -> bool:
        return p.startswith(prefix) and (recursive or "/" not in p[len(prefix):])

    out = [dir_item(d, files) for d in sorted(dirs) if wanted(d)]
    out += [file_item(p, files[p]) for p in sorted(files) if wanted(p)]
    if recursive:
        out.sort(key=lambda i: i["path"])
    return out


def add_last_commits(ctx: HubContext, head: str, items: list[dict[str, Any]]) -> None:
    """`expand=true`: the newest commit that changed each entry (bounded walk, local repos are small)."""
    history = ctx.store.history(head)[:500]
    trees = [ctx.store.tree_files(c["id"]) for c in history]
    for item in items:
        key = item["path"]
        oid_at = ((lambda f: dir_item(key, f)["oid"] if any(p.startswith(key + "/") for p in f) else None)
                  if item["type"] == "directory" else (lambda f: (f.get(key) or [None])[0]))
        last = history[-1]
        for i, c in enumerate(history):
            if i + 1 == len(history) or oid_at(trees[i]) != oid_at(trees[i + 1]):
                last = c
                break
        item["lastCommit"] = {"id": last["id"], "title": last["title"], "date": iso(last["created_at"])}


async def tree(ctx: HubContext, request: Request, t: str, ns: str, name: str, rev: str,
               path: str = "") -> Response:
    repo, _ = ctx.repo(request, t, ns, name)
    cid = ctx.store.resolve(repo, rev)
    recursive = request.query_params.get("recursive") in ("true", "True", "1")
    items = tree_items(ctx.store.tree_files(cid), path, recursive)
    page, headers = paged(request, items, ctx.page_size)
    if request.query_params.get("expand") in ("true", "True", "1"):
        add_last_commits(ctx, cid, page)
    return json_response(page, headers=headers)


async def paths_info(ctx: HubContext, request: Request, t: str, ns: str, name: str, rev: str) -> Response:
    repo, _ = ctx.repo(request, t, ns, name)
    cid = ctx.store.resolve(repo, rev)
    body = await read_body(request, JSON_LIMIT, "paths-info body", ctx.body_timeout)
    if request.headers.get("content-type", "").startswith("application/json"):
        data = parse_json(body or b"{}", "paths-info body")
        if not isinstance(data, dict):
            raise bad_request("paths-info body must be a JSON object")
        paths, expand = field(data, "paths", list, []), field(data, "expand", bool, False)
    else:
        form = parse_qs(body.decode("utf-8", "replace"))
        paths, expand = form.get("paths", []), form.get("expand", ["false"])[0] in ("true", "True", "1")
    if not all(isinstance(p, str) for p in paths):
        raise bad_request("paths must be a list of strings")
    files = ctx.store.tree_files(cid)
    dirs = directories(files)
    items = []
    for p in dict.fromkeys(x.strip("/") for x in paths):
        if p in files:
            items.append(file_item(p, files[p]))
        elif p in dirs:
            items.append(dir_item(p, files))
    if expand:
        add_last_commits(ctx, cid, items)
    return json_response(items)


def file_headers(cid: str, entry: list[Any]) -> dict[str, str]:
    sha1, size, lfs = entry
    headers = {"X-Repo-Commit": cid, "ETag": f'"{sha1}"', "Accept-Ranges": "bytes"}
    if lfs:
        # Hub convention: the cache names the blob after X-Linked-Etag (sha256) and checks X-Linked-Size.
        headers.update({"X-Linked-Etag": f'"{lfs}"', "X-Linked-Size": str(size)})
    return headers


async def resolve(ctx: HubContext, request: Request, t: str, ns: str, name: str, rev: str,
                  path: str) -> Response:
    repo: Repo
    repo, _ = ctx.repo(request, t, ns, name)
    cid = ctx.store.resolve(repo, rev)
    files = ctx.store.tree_files(cid)
    entry = files.get(path)
    if entry is None:
        # With X-Repo-Commit the client caches the miss under .no_exist/<sha>/.
        return error_response(entry_not_found(path), headers={"X-Repo-Commit": cid})
    sha1, size, lfs = entry
    headers = file_headers(cid, entry)
    headers["Content-Type"] = mimetypes.guess_type(path)[0] or "application/octet-stream"
    headers["Content-Disposition"] = f'inline; filename="{path.rsplit("/", 1)[-1].replace(chr(34), "")}"'
    start, end, status = 0, size - 1, 200
    range_header = request.headers.get("range")
    if range_header and size > 0:
        m = RANGE_RE.match(range_header.strip())
        if m and (m.group(1) or m.group(2)):
            if m.group(1):
                start = int(m.group(1))
                end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
            else:
                start = max(0, size - int(m.group(2)))
            if start > end or start >= size:
                return error_response(ApiError(416, "Requested range not satisfiable"),
                                      headers={"Content-Range": f"bytes */{size}", **headers})
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    length = max(0, end - start + 1)
    headers["Content-Length"] = str(length)
    if request.method == "HEAD" or length == 0:
        return Response(b"", status_code=status, headers=headers)
    blob = ctx.store.blobs.open_content(sha1, lfs)
    return StreamingResponse(BlobStore.iter_range(blob, start, end), status_code=status, headers=headers)
