"""Reading request bodies with limits, and the typed fields the handlers take out of them.

Every body is capped before it is read: a declared `Content-Length` above the cap is answered 413
at once, a chunked body is cut as soon as it passes the cap. JSON bodies (at most JSON_LIMIT)
must arrive within the server's idle timeout, may nest at most MAX_DEPTH levels and must be UTF-8
without lone surrogates; all of them together may hold at most BUFFER_BUDGET bytes in memory
(503 beyond). Streamed bodies (commits, LFS uploads) go to disk, never to memory.

>>> parse_json(b'{"a": [1, {"b": 2}]}')
{'a': [1, {'b': 2}]}
>>> parse_json(b"[" * 100 + b"]" * 100)
Traceback (most recent call last):
...
tensorferry.publish.hub.errors.ApiError: Request body is not valid JSON: nested deeper than 32 levels
"""
from __future__ import annotations

import asyncio
import json
from typing import Any, AsyncIterator

from starlette.requests import Request

from .errors import ApiError, bad_request

JSON_LIMIT = 4 << 20  # the client sends batches of 256 files: its largest JSON body is ~200 kB
MAX_DEPTH = 32  # the deepest body the client sends nests 4 levels
BUFFER_BUDGET = 256 << 20
_buffered = 0  # bytes of JSON bodies held right now, by all requests (one event loop: no lock)


def too_large(what: str, limit: int) -> ApiError:
    return ApiError(413, f"{what} is too large: the limit is {limit} bytes", "PayloadTooLarge")


def declared_length(request: Request) -> int | None:
    """The request's Content-Length, None when chunked; 400 if it is not a number."""
    value = request.headers.get("content-length")
    if value is None:
        return None
    if not value.strip().isdigit():
        raise bad_request("Invalid Content-Length")
    return int(value)


async def stream(request: Request, limit: int, what: str) -> AsyncIterator[bytes]:
    """The body's chunks; 413 before reading if it declares more than `limit`, or once it passes it."""
    declared = declared_length(request)
    if declared is not None and declared > limit:
        raise too_large(what, limit)
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(what, limit)
        yield chunk


async def read_body(request: Request, limit: int = JSON_LIMIT, what: str = "Request body",
                    timeout: float = 60.0) -> bytes:
    """The whole body in memory: capped at `limit`, due within `timeout` seconds (408), and counted
    against the budget of all bodies held at once (503 when it is spent)."""
    global _buffered
    declared = declared_length(request)
    if declared is not None and declared > limit:
        raise too_large(what, limit)
    reserve = declared if declared is not None else limit
    if _buffered + reserve > BUFFER_BUDGET:
        raise ApiError(503, "Server busy reading other requests, try again", "Busy")
    _buffered += reserve
    chunks: list[bytes] = []

    async def collect() -> None:
        async for chunk in stream(request, limit, what):
            chunks.append(chunk)

    try:
        await asyncio.wait_for(collect(), timeout)
    except asyncio.TimeoutError:
        raise ApiError(408, f"{what} did not arrive within {timeout:g} s", "RequestTimeout") from None
    finally:
        _buffered -= reserve
    return b"".join(chunks)


def parse_json(body: bytes, what: str = "Request body") -> Any:
    """JSON from `body`: 400 naming the problem if it is not UTF-8, not JSON, nested deeper than
    MAX_DEPTH, or holds a lone surrogate (which nothing downstream could store or send back)."""
    try:
        text = body.decode("utf-8")
        data = json.loads(text)
    except UnicodeDecodeError:
        raise bad_request(f"{what} is not UTF-8") from None
    except RecursionError:
        raise bad_request(f"{what} is not valid JSON: nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as e:
        raise bad_request(f"{what} is not valid JSON: {e}") from None
    problem = _shape_problem(data)
    if problem:
        raise bad_request(f"{what} is not valid JSON: {problem}")
    return data


def _shape_problem(data: Any) -> str | None:
    """Too deep or a string that is not encodable; iterative, so depth itself cannot hurt."""
    todo: list[tuple[Any, int]] = [(data, 1)]
    while todo:
        value, depth = todo.pop()
        if isinstance(value, (dict, list)):
            if depth > MAX_DEPTH:
                return f"nested deeper than {MAX_DEPTH} levels"
            items = list(value.items()) if isinstance(value, dict) else [(None, v) for v in value]
            for key, item in items:
                if isinstance(key, str) and not _utf8(key):
                    return "a key is not valid Unicode (lone surrogate)"
                todo.append((item, depth + 1))
        elif isinstance(value, str) and not _utf8(value):
            return "a string is not valid Unicode (lone surrogate)"
    return None


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


async def read_json(request: Request, timeout: float = 60.0, what: str = "Request body") -> dict[str, Any]:
    """A JSON object body ({} when empty): limits of `read_body`, checks of `parse_json`."""
    body = await read_body(request, JSON_LIMIT, what, timeout)
    if not body.strip():
        return {}
    data = parse_json(body, what)
    if not isinstance(data, dict):
        raise bad_request(f"{what} must be a JSON object")
    return data


# Typed fields: a wrong type is the caller's error (400), never an AttributeError later (500).
def field(data: dict[str, Any], key: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
    """`data[key]` if it has type `kind` (missing or null → `default`), else 400 naming the field.

    >>> field({"n": 3}, "n", int), field({}, "n", int, 0)
    (3, 0)
    """
    value = data.get(key)
    if value is None:
        return default
    if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, float, (int, float))):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise bad_request(f"Field {key!r} must be {names}, got {type(value).__name__}")
    return value


def text(data: dict[str, Any], key: str, default: str = "") -> str:
    """A string field; 400 if present and not a string."""
    return field(data, key, str, default)


def objects(data: dict[str, Any], key: str) -> list[dict[str, Any]]:
    """A list-of-objects field ([] when missing); 400 if it is anything else."""
    items = field(data, key, list, [])
    if not all(isinstance(i, dict) for i in items):
        raise bad_request(f"Field {key!r} must be a list of objects")
    return items
