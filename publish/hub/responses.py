"""Small response helpers shared by the API modules: JSON bodies, errors, Link paging, URLs.

>>> bytes(json_response({"a": 1}).body)
b'{"a":1}'
"""
from __future__ import annotations

import datetime as _dt
import json
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from .errors import ApiError


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Compact JSON with an exact Content-Length (keep-alive clients depend on it)."""
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
    return Response(body, status_code=status, headers=headers, media_type="application/json")


def error_response(err: ApiError, extra: dict[str, Any] | None = None,
                   headers: dict[str, str] | None = None) -> Response:
    """JSON `{"error": ...}` plus `X-Error-Code`/`X-Error-Message`, which the client maps to exceptions."""
    hdrs = {"X-Error-Message": err.message.encode("ascii", "replace").decode()}
    if err.code:
        hdrs["X-Error-Code"] = err.code
    hdrs.update(headers or {})
    body: dict[str, Any] = {"error": err.message}
    body.update(extra or {})
    return json_response(body, status=err.status, headers=hdrs)


def base_url(request: Request) -> str:
    """The endpoint as the client spelled it: URLs we return must match its host exactly."""
    host = request.headers.get("host") or f"{request.url.hostname}:{request.url.port}"
    return f"{request.url.scheme}://{host}"


def paged(request: Request, items: list[Any], page_size: int) -> tuple[list[Any], dict[str, str]]:
    """Slice `items` at the `cursor` query parameter; add a `Link: rel="next"` header if more remain.

    The client follows the absolute next URL as is, so the cursor is a plain offset.
    """
    try:
        start = max(0, int(request.query_params.get("cursor", "0")))
    except ValueError:
        start = 0
    limit = page_size
    if "limit" in request.query_params:
        try:
            limit = max(1, min(page_size, int(request.query_params["limit"])))
        except ValueError:
            pass
    page = items[start:start + limit]
    headers: dict[str, str] = {}
    if start + limit < len(items):
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]
        params.append(("cursor", str(start + limit)))
        raw = request.scope.get("raw_path", b"").decode("latin-1").split("?")[0] or request.url.path
        url = f"{base_url(request)}{raw}?{urlencode(params)}"
        headers["Link"] = f'<{url}>; rel="next"'
    return page, headers


def iso(ts: float) -> str:
    """Hub timestamp format: `2024-01-31T12:00:00.000Z`."""
    d = _dt.datetime.fromtimestamp(ts, tz=_dt.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"
