"""Git LFS over HTTP: the batch API (basic and multipart transfers), upload and verify.

Upload requests carry no Authorization header (the client drops it), so the batch answer hands
out URLs signed with the data dir's secret, bound to (repository, oid, size, expiry). Bodies are
streamed to a temporary file, then hashed once, in a worker thread (from the page cache, so the
event loop keeps serving other clients); only a verified file is renamed into the content-addressed
store, so memory stays flat whatever the file size.  A multipart object is hashed at its
completion; a part's ETag is a receipt that it arrived whole, not a second sha256 of every byte.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import time
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from .auth import HubContext
from .bodies import declared_length, field, objects as field_objects, read_json, text
from .errors import ApiError, bad_request, forbidden
from .responses import base_url, json_response

LFS_JSON = "application/vnd.git-lfs+json"
MULTIPART_THRESHOLD = 64 << 20
PART_SIZE = 16 << 20
OBJECT = "object"  # the multipart object's file in its parts folder
TICKET_TTL = 24 * 3600
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
PART_ETAG = re.compile(r"^[0-9a-f]{32}$")  # a receipt for a part that arrived whole, not a hash


def _sign(ctx: HubContext, repo_id: int, oid: str, size: int, expiry: int) -> str:
    msg = f"{repo_id}:{oid}:{size}:{expiry}".encode()
    return hmac.new(ctx.secret, msg, hashlib.sha256).hexdigest()[:40]


def _ticket_url(ctx: HubContext, request: Request, repo_id: int, oid: str, size: int) -> str:
    expiry = int(time.time()) + TICKET_TTL
    return f"{base_url(request)}/lfs/upload/{repo_id}/{oid}/{size}/{expiry}/{_sign(ctx, repo_id, oid, size, expiry)}"


def check_ticket(ctx: HubContext, repo_id: str, oid: str, size: str, expiry: str, sig: str) -> tuple[int, int]:
    """Validate a signed upload URL; returns (repository id, size)."""
    try:
        rid, nbytes, exp = int(repo_id), int(size), int(expiry)
    except ValueError:
        raise forbidden("Malformed upload URL") from None
    if not SHA256_RE.match(oid) or not hmac.compare_digest(sig, _sign(ctx, rid, oid, nbytes, exp)):
        raise forbidden("Invalid upload signature")
    if exp < time.time():
        raise forbidden("Upload URL expired; run the upload again")
    return rid, nbytes


def lfs_error(status: int, message: str) -> Response:
    body = json.dumps({"message": message}).encode()
    return Response(body, status_code=status, media_type=LFS_JSON)


async def batch(ctx: HubContext, request: Request, ns: str, name: str, t: str = "model") -> Response:
    ctx.repo(request, t, ns, name)  # 404 for a missing or hidden repository, before reading the body
    data = await read_json(request, ctx.body_timeout, "LFS batch body")
    if text(data, "operation") != "upload":
        raise bad_request("Only the upload operation is served; download through /resolve/")
    repo, _ = ctx.repo(request, t, ns, name, write=True)
    if text(data, "hash_algo", "sha256") != "sha256":
        raise bad_request("Only sha256 is supported")
    objects = []
    for obj in field_objects(data, "objects"):
        oid, size = str(obj.get("oid", "")), obj.get("size")
        if not SHA256_RE.match(oid) or not isinstance(size, int) or size < 0:
            objects.append({"oid": oid, "size": int(size) if isinstance(size, int) else 0,
                            "error": {"code": 422, "message": "Invalid oid or size"}})
            continue
        item: dict[str, Any] = {"oid": oid, "size": size}
        # Already stored for this repository: no actions means "skip the upload".
        # An object stored for another repository must be uploaded again: having its hash is not
        # proof of having its bytes.
        if not (ctx.store.lfs_size(repo, oid) == size and ctx.store.blobs.has_lfs(oid)):
            href = _ticket_url(ctx, request, repo.id, oid, size)
            upload: dict[str, Any] = {"href": href}
            if size > MULTIPART_THRESHOLD:
                n_parts = -(-size // PART_SIZE)
                upload["header"] = {"chunk_size": str(PART_SIZE),
                                    **{f"{i:05d}": f"{href}/part/{i}" for i in range(1, n_parts + 1)}}
            verify = f"{base_url(request)}/{ns}/{name}.git/info/lfs/objects/verify"
            item["actions"] = {"upload": upload, "verify": {"href": verify}}
            item["authenticated"] = True
        objects.append(item)
    body = json.dumps({"transfer": "basic", "objects": objects, "hash_algo": "sha256"}).encode()
    return Response(body, media_type=LFS_JSON)


async def _stream_to(request: Request, path: Path, limit: int, offset: int = 0) -> int:
    """Write the body to `path` from `offset`; 400 (the upload URL's size) once it passes `limit`.
    Returns the bytes written.  Hashing is left to a worker thread afterwards: done here, it would
    hold the event loop, and every other client with it, for ~1 s per GiB."""
    size = 0
    declared = declared_length(request)
    if declared is not None and declared > limit:
        raise bad_request(f"Upload of {declared} bytes exceeds the {limit} bytes this URL was issued for")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        async for chunk in request.stream():
            if size + len(chunk) > limit:
                raise bad_request(f"Upload exceeds the {limit} bytes this URL was issued for")
            if chunk:
                view = memoryview(chunk)
                while view:
                    view = view[os.pwrite(fd, view, offset + size + len(chunk) - len(view)):]
                size += len(chunk)
    finally:
        os.close(fd)
    return size


async def upload(ctx: HubContext, request: Request, repo_id: str, oid: str, size: str, expiry: str,
                 sig: str) -> Response:
    """Basic transfer: one PUT with the whole object."""
    rid, nbytes = check_ticket(ctx, repo_id, oid, size, expiry, sig)
    fd, tmp = ctx.store.blobs.tmp_file(".upload")
    os.close(fd)
    try:
        await _stream_to(request, tmp, nbytes)
        got, got_size = await run_in_threadpool(ctx.store.blobs.hash_and_sync, tmp)
        if got != oid or got_size != nbytes:
            raise bad_request(f"Uploaded content does not match oid {oid} / size {nbytes} (got {got_size} bytes)")
        await run_in_threadpool(ctx.store.blobs.publish_lfs, tmp, oid)
    except ClientDisconnect:
        return Response(b"", status_code=400)
    finally:
        tmp.unlink(missing_ok=True)
    _link(ctx, rid, oid, nbytes)
    return Response(b"", status_code=200)


def _link(ctx: HubContext, rid: int, oid: str, size: int) -> None:
    row = ctx.store.q1("SELECT * FROM repos WHERE id=?", rid)
    if row is None:
        raise ApiError(404, "Repository was deleted during the upload", "RepoNotFound")
    with ctx.store.tx() as db:
        db.execute("INSERT OR IGNORE INTO lfs_links VALUES(?,?,?)", (rid, oid, size))


def _parts_dir(ctx: HubContext, rid: int, oid: str) -> Path:
    return ctx.store.blobs.tmp / f"multipart-{rid}-{oid}"


async def upload_part(ctx: HubContext, request: Request, repo_id: str, oid: str, size: str, expiry: str,
                      sig: str, part: str) -> Response:
    """Multipart transfer: one PUT per part, written in place at its offset of the object's file.

    The ETag we answer (a random receipt) is echoed back on completion; an empty marker file
    named by it records that the part arrived whole.  Parts share one file so that completion
    only hashes it: no join copy of the whole object.
    """
    rid, nbytes = check_ticket(ctx, repo_id, oid, size, expiry, sig)
    n = int(part)
    if not 1 <= n <= -(-nbytes // PART_SIZE):
        raise bad_request(f"Invalid part number {part}")
    if (rid, oid) in ctx.completing:
        raise ApiError(409, f"The upload of {oid} is being completed: its parts can no longer change", "Conflict")
    d = _parts_dir(ctx, rid, oid)
    d.mkdir(exist_ok=True)
    # A part arriving again is whole only once it has arrived whole; until then a completion finds it missing.
    for old in d.glob(f"{n:05d}.*"):
        old.unlink(missing_ok=True)
    expected = min(PART_SIZE, nbytes - (n - 1) * PART_SIZE)
    try:
        got = await _stream_to(request, d / OBJECT, expected, offset=(n - 1) * PART_SIZE)
    except ClientDisconnect:
        return Response(b"", status_code=400)
    if got != expected:
        raise bad_request(f"Part {n} is {got} bytes; it must be {expected}")
    receipt = secrets.token_hex(16)
    (d / f"{n:05d}.{receipt}").touch()
    return Response(b"", headers={"ETag": f'"{receipt}"'})


async def complete(ctx: HubContext, request: Request, repo_id: str, oid: str, size: str, expiry: str,
                   sig: str) -> Response:
    """Multipart completion: every part present with its ETag, then the whole file's sha256 and size."""
    rid, nbytes = check_ticket(ctx, repo_id, oid, size, expiry, sig)
    data = await read_json(request, ctx.body_timeout, "multipart completion body")
    d = _parts_dir(ctx, rid, oid)
    parts = []
    for p in field_objects(data, "parts"):
        number, etag = field(p, "partNumber", int), text(p, "etag")
        if number is None or not 1 <= number <= -(-nbytes // PART_SIZE) or not PART_ETAG.match(etag.strip('"')):
            raise bad_request(f"Invalid part {p!r}")
        parts.append((number, etag.strip('"')))
    for number, etag in sorted(parts):
        if not (d / f"{number:05d}.{etag}").is_file():
            raise bad_request(f"Part {number} missing or its etag does not match")
    if len({n for n, _ in parts}) != -(-nbytes // PART_SIZE):
        raise bad_request("Wrong number of parts")
    key = (rid, oid)
    if key in ctx.completing:
        raise ApiError(409, f"The upload of {oid} is already being completed", "Conflict")
    ctx.completing.add(key)  # from here to the end, a part arriving is refused: it would write into the object
    joined = d / OBJECT
    try:
        got, got_size = await run_in_threadpool(ctx.store.blobs.hash_and_sync, joined)
        if got != oid or got_size != nbytes:
            raise bad_request(f"Joined parts do not match oid {oid} / size {nbytes}")
        await run_in_threadpool(ctx.store.blobs.publish_lfs, joined, oid)
    finally:
        ctx.completing.discard(key)
        shutil.rmtree(d, ignore_errors=True)
    _link(ctx, rid, oid, nbytes)
    return Response(b"", status_code=200)


async def verify(ctx: HubContext, request: Request, ns: str, name: str, t: str = "model") -> Response:
    repo, _ = ctx.repo(request, t, ns, name, write=True)
    data = await read_json(request, ctx.body_timeout, "LFS verify body")
    oid, size = text(data, "oid"), field(data, "size", int)
    if ctx.store.lfs_size(repo, oid) != size or not ctx.store.blobs.has_lfs(oid):
        return lfs_error(404, f"Object {oid} not found")
    return json_response({"oid": oid, "size": size})
