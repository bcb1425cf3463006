"""The local Hub's ASGI application and its uvicorn runner.

Routing works on the raw, undecoded path (`scope["raw_path"]`): revisions arrive percent-encoded
(`refs%2Fpr%2F1`) and would be ambiguous once decoded. Each segment is decoded after matching.

>>> app = create_app(__import__("tempfile").mkdtemp())
>>> callable(app)
True
"""
from __future__ import annotations

import logging
import os
import re
import socket
import sys
from pathlib import Path
from typing import Any, Awaitable, Callable
from urllib.parse import unquote

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from tensorferry.converters.constants import LOCAL_HUB_PORT

from . import api_commit, api_files, api_lfs, api_repos, web
from .auth import HubContext
from .connections import protocol_class
from .limits import Limits
from .errors import ApiError
from .faults import ENV as FAULTS_ENV, parse_faults
from .responses import error_response, json_response
from .storage import Store

log = logging.getLogger("tensorferry.hub")
Handler = Callable[..., Awaitable[Response]]

HEAD_LIMIT = 16 << 10  # request line and headers
REPO = r"/api/(?P<t>models|datasets|spaces)/(?P<ns>[^/]+)/(?P<name>[^/]+)"
FILES = r"/(?:(?P<tp>datasets|spaces)/)?(?P<ns>[^/]+)/(?P<name>[^/]+)"
TICKET = r"/lfs/upload/(?P<repo_id>\d+)/(?P<oid>[0-9a-f]{64})/(?P<size>\d+)/(?P<expiry>\d+)/(?P<sig>[0-9a-f]+)"


async def xet_refused(ctx: HubContext, request: Request, **_: str) -> Response:
    raise ApiError(501, "This server does not speak Xet: set HF_HUB_DISABLE_XET=1 in the client", "XetNotSupported")


async def health(ctx: HubContext, request: Request) -> Response:
    return json_response({"status": "ok"})


ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", r"/api/whoami-v2", api_repos.whoami),
    ("POST", r"/api/repos/create", api_repos.create_repo),
    ("DELETE", r"/api/repos/delete", api_repos.delete_repo),
    ("POST", r"/api/validate-yaml", api_repos.validate_yaml),
    ("GET", r"/api/(?P<t>models|datasets|spaces)", api_repos.list_models),
    ("GET", REPO, api_repos.repo_info),
    ("GET", REPO + r"/revision/(?P<rev>[^/]+)", api_repos.repo_info),
    ("GET", REPO + r"/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?", api_files.tree),
    ("POST", REPO + r"/paths-info/(?P<rev>[^/]+)", api_files.paths_info),
    ("GET", REPO + r"/refs", api_repos.list_refs),
    ("GET", REPO + r"/commits/(?P<rev>[^/]+)", api_repos.list_commits),
    ("POST DELETE", REPO + r"/branch/(?P<branch>.+)", api_repos.branch),
    ("POST DELETE", REPO + r"/tag/(?P<rev>[^/]+)", api_repos.tag),
    ("PUT", REPO + r"/settings", api_repos.settings),
    ("POST", REPO + r"/preupload/(?P<rev>[^/]+)", api_commit.preupload),
    ("POST", REPO + r"/commit/(?P<rev>[^/]+)", api_commit.commit),
    ("GET POST", REPO + r"/discussions", api_commit.list_discussions),
    ("GET", REPO + r"/discussions/(?P<num>\d+)", api_commit.discussion),
    ("POST", REPO + r"/discussions/(?P<num>\d+)/(?P<action>merge|status|comment)", api_commit.discussion_action),
    ("GET", REPO + r"/xet-write-token/(?P<rev>[^/]+)", xet_refused),
    ("GET", REPO + r"/xet-read-token/(?P<rev>[^/]+)", xet_refused),
    ("PUT", TICKET, api_lfs.upload),
    ("PUT", TICKET + r"/part/(?P<part>\d+)", api_lfs.upload_part),
    ("POST", TICKET, api_lfs.complete),
    ("POST", FILES + r"\.git/info/lfs/objects/batch", api_lfs.batch),
    ("POST", FILES + r"\.git/info/lfs/objects/verify", api_lfs.verify),
    ("GET HEAD", FILES + r"/resolve/(?P<rev>[^/]+)/(?P<path>.+)", api_files.resolve),
    ("GET", r"/health", health),
    ("GET", r"/", web.index),
    ("GET", r"/(?!api/|lfs/)(?P<ns>[^/]+)/(?P<name>[^/]+)", web.repo_page),
]
COMPILED = [(set(m.split()) | ({"HEAD"} if "GET" in m else set()), re.compile(p + r"/?\Z" if p != "/" else r"/\Z"), h)
            for m, p, h in ROUTES]
TYPES = {"models": "model", "datasets": "dataset", "spaces": "space", None: "model"}


def _params(match: re.Match[str]) -> dict[str, Any]:
    params = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
    if "tp" in match.groupdict() or "t" in params:
        params["t"] = TYPES.get(match.groupdict().get("tp") or params.get("t"), "model")
        params.pop("tp", None)
    return params


def create_app(data_dir: str | os.PathLike[str], page_size: int = 1000,
               body_timeout: float = 60.0, durable: bool = True) -> Callable[..., Awaitable[None]]:
    """The ASGI app over the store in `data_dir`; JSON bodies must arrive within `body_timeout` s."""
    ctx = HubContext(Store(Path(data_dir), durable), page_size=page_size, body_timeout=body_timeout)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    ctx.store.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        response = await dispatch(ctx, request)
        await response(scope, receive, send)

    app.ctx = ctx  # type: ignore[attr-defined]
    return app


async def dispatch(ctx: HubContext, request: Request) -> Response:
    raw = request.scope.get("raw_path") or request.scope["path"].encode()
    path = raw.decode("latin-1").split("?", 1)[0]
    allowed: set[str] = set()
    try:
        for methods, pattern, handler in COMPILED:
            m = pattern.match(path)
            if not m:
                continue
            if request.method not in methods:
                allowed |= methods
                continue
            return await handler(ctx, request, **_params(m))
        if allowed:
            return error_response(ApiError(405, f"Method {request.method} not allowed"),
                                  headers={"Allow": ", ".join(sorted(allowed))})
        return error_response(ApiError(404, f"Not found: {path}", "NotFound"))
    except ApiError as e:
        return error_response(e)
    except ClientDisconnect:
        return Response(b"", status_code=400)
    except (ValueError, KeyError, TypeError) as e:
        # Malformed input that slipped past explicit checks is the caller's error, not ours.
        log.info("bad request on %s %s: %s", request.method, path, type(e).__name__)
        return error_response(ApiError(400, f"Bad request: {type(e).__name__}: {e}", "BadRequest"))
    except Exception:
        log.exception("internal error on %s %s", request.method, path)
        return error_response(ApiError(500, "Internal server error"))


def bind(host: str, port: int) -> socket.socket:
    """Bind before uvicorn starts so `--port 0` can report the port it got."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(data_dir: str | os.PathLike[str], host: str = "127.0.0.1", port: int = LOCAL_HUB_PORT,
          ready_file: str | None = None, page_size: int = 1000, log_level: str = "warning",
          limits: Limits = Limits(), durable: bool = True) -> None:
    """Run the Hub until interrupted. `ready_file` receives the endpoint URL once listening.

    ``durable=False`` (``--no-fsync``) skips fsync: uploads and commits stay atomic (a killed
    server never shows half of one) but a machine crash may lose the last ones; for throwaway Hubs.

    Reads `TENSORFERRY_HUB_FAULTS` (TEST-ONLY fault injection, see faults.py); a bad value is a
    ValueError before anything starts. Example:
    `serve("~/.cache/tensorferry/hub", port=0, ready_file="/tmp/hub.url")`.
    """
    import uvicorn

    faults = parse_faults(os.environ.get(FAULTS_ENV))
    if faults is not None:
        print(f"WARNING: {FAULTS_ENV} is set: TEST-ONLY fault injection, {faults.describe()} of API and LFS "
              "requests fail on purpose. Never run a real Hub like this.", file=sys.stderr, flush=True)
    protocol = protocol_class(limits, faults)
    data = Path(data_dir).expanduser()
    store = Store(data)
    store.blobs.clean_tmp()  # leftovers of a crash: never visible, safe to drop before serving
    store.close()
    sock = bind(host, port)
    actual = sock.getsockname()[1]
    url = f"http://{host if ':' not in host else f'[{host}]'}:{actual}"
    app = create_app(data, page_size=page_size, body_timeout=limits.idle_timeout, durable=durable)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # http=protocol: uvicorn's h11 protocol with our timeouts and cap (connections.py); h11 itself
    # refuses a request head over 16 KiB.
    config = uvicorn.Config(app, log_level=log_level, access_log=log_level in ("debug", "info"),
                            timeout_keep_alive=30, lifespan="on", http=protocol,
                            h11_max_incomplete_event_size=HEAD_LIMIT, backlog=2048)
    server = uvicorn.Server(config)
    print(f"Local Hub serving {data} on {url} (at most {protocol.cap} connections"
          f"{'' if durable else ', no fsync'})", flush=True)
    if ready_file:
        tmp = f"{ready_file}.tmp"
        Path(tmp).write_text(url)
        os.replace(tmp, ready_file)
    server.run(sockets=[sock])
