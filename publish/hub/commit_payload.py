"""The commit endpoint's NDJSON body: spooled to disk with caps, then read one checked line at a time.

Each line is `{"key": K, "value": {...}}`: a `header` (summary, description, parentCommit), then
`file` (a regular file, base64 inline), `lfsFile`, `deletedFile` or `deletedFolder`. Memory is
bounded by one line: a line may hold at most LINE_LIMIT bytes, which fits an inline file of
INLINE_LIMIT bytes (larger files go through LFS: preupload tells the client so); the whole body
at most COMMIT_LIMIT bytes on disk.

>>> parse_line(b'{"key":"deletedFile","value":{"path":"a.txt"}}', 2)
('deletedFile', {'path': 'a.txt'})
>>> parse_line(b'{"key":"file","value":"a.txt"}', 2)
Traceback (most recent call last):
...
tensorferry.publish.hub.errors.ApiError: Commit line 2: 'value' must be a JSON object
"""
from __future__ import annotations

import base64
import binascii
import re
from typing import Any, BinaryIO, Iterator

from starlette.requests import Request

from .bodies import field, parse_json, stream, text
from .errors import ApiError, bad_request
from .names import check_path

INLINE_LIMIT = 10 << 20  # decoded bytes; preupload sends anything larger through LFS
LINE_LIMIT = 4 * -(-INLINE_LIMIT // 3) + (64 << 10)  # its base64 plus room for the path and keys
COMMIT_LIMIT = 1 << 30
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
OPS = ("file", "lfsFile", "deletedFile", "deletedFolder")


def line_too_large(n: int) -> ApiError:
    return ApiError(413, f"Commit line {n} is larger than {LINE_LIMIT} bytes: inline files are limited to "
                         f"{INLINE_LIMIT} bytes, send larger ones through LFS", "PayloadTooLarge")


async def spool(request: Request, out: BinaryIO) -> None:
    """Copy the body to `out`, refusing (413) a line over LINE_LIMIT or a body over COMMIT_LIMIT as
    soon as it passes the cap, so a 200 MB inline file is neither stored nor read to its end."""
    line_bytes, n = 0, 1
    async for chunk in stream(request, COMMIT_LIMIT, "Commit body"):
        start = 0
        while (nl := chunk.find(b"\n", start)) != -1:
            if line_bytes + nl - start > LINE_LIMIT:
                raise line_too_large(n)
            line_bytes, n, start = 0, n + 1, nl + 1
        line_bytes += len(chunk) - start
        if line_bytes > LINE_LIMIT:
            raise line_too_large(n)
        out.write(chunk)


def read_lines(f: BinaryIO) -> Iterator[tuple[str, dict[str, Any]]]:
    """(key, checked value) for each non-empty line of a spooled body."""
    n = 0
    while line := f.readline(LINE_LIMIT + 1):
        n += 1
        if len(line) > LINE_LIMIT:
            raise line_too_large(n)
        if line.strip():
            yield parse_line(line, n)


def parse_line(line: bytes, n: int) -> tuple[str, dict[str, Any]]:
    """One line → (key, value) with every field the server reads type-checked; 400 otherwise."""
    obj = parse_json(line, f"Commit line {n}")
    if not isinstance(obj, dict) or not isinstance(obj.get("key"), str):
        raise bad_request(f"Commit line {n}: must be an object {{key, value}} with a string key")
    key, value = obj["key"], obj.get("value")
    if not isinstance(value, dict):
        raise bad_request(f"Commit line {n}: 'value' must be a JSON object")
    try:
        if key == "header":
            return key, {"summary": text(value, "summary"), "description": text(value, "description"),
                         "parentCommit": text(value, "parentCommit") or None}
        if key not in OPS:
            raise bad_request(f"Unknown commit operation {key!r}")
        raw = value.get("path")
        path = check_path(raw.rstrip("/") if key == "deletedFolder" and isinstance(raw, str) else raw)
        if key == "file":
            if text(value, "encoding", "base64") != "base64":
                raise bad_request(f"Unsupported encoding for {path}")
            return key, {"path": path, "content": text(value, "content")}
        if key == "lfsFile":
            if text(value, "algo", "sha256") != "sha256":
                raise bad_request("Only sha256 LFS objects are supported")
            oid, size = text(value, "oid"), field(value, "size", int)
            if not SHA256_RE.match(oid) or (size is not None and size < 0):
                raise bad_request(f"Invalid LFS oid or size for {path}")
            return key, {"path": path, "oid": oid, "size": size}
        return key, {"path": path}
    except ApiError as e:
        raise bad_request(f"Commit line {n}: {e.message}") from None


def decode_inline(path: str, content: str) -> bytes:
    """The bytes of an inline `file` line; 400 if not base64, 413 above INLINE_LIMIT."""
    if len(content) > 4 * -(-INLINE_LIMIT // 3):
        raise ApiError(413, f"Inline file {path} is larger than {INLINE_LIMIT} bytes: send it through LFS",
                       "PayloadTooLarge")
    try:
        return base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError):
        raise bad_request(f"Invalid base64 content for {path}") from None
