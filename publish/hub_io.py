"""Talking to a Hub with the unmodified ``huggingface_hub`` client: endpoint, token, retries, downloads.

* ``Hub`` is where to talk to and as whom, resolved the way huggingface_hub users expect:
  ``--endpoint`` else ``HF_ENDPOINT`` else huggingface.co; ``--token`` else ``HF_TOKEN`` else the stored
  login.  Its ``repr`` never shows the token, and ``redact`` scrubs tokens out of any message.
* ``call`` retries what is safe to retry (429 honouring ``Retry-After``, 5xx, dropped connections)
  and turns what is left into a ``HubError`` (exit 4) carrying the Hub's own message.
* ``fetch`` downloads a repo's config and ONE framework's weights through the HF cache.
* huggingface_hub uploads through Xet by default and never falls back to LFS; the local Hub (and
  any server that is not huggingface.co) does not speak Xet, so ``Hub.api`` turns it off there.

>>> disable_xet_for("https://huggingface.co")
False
>>> disable_xet_for("http://127.0.0.1:8765")
True
>>> Hub("http://127.0.0.1:8765", "hf_SECRETSECRETSECRET")
Hub(endpoint='http://127.0.0.1:8765', token=<set>)
>>> redact("401 for Bearer hf_SECRETSECRETSECRET", "hf_SECRETSECRETSECRET")
'401 for Bearer hf_***'
"""
from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

from tensorferry.converters.constants import CONFIG, FILES, STANDARD
from tensorferry.converters.errors import HubError, InputError

DEFAULT_ENDPOINT = "https://huggingface.co"
HUB_HOSTS = ("huggingface.co", "hf.co")
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
# What can be retried without harm: the request did nothing (rate limit, server error, connection lost).
TRANSIENT_STATUS = (408, 429, 500, 502, 503, 504)
TOKEN_LIKE = re.compile(r"hf_[A-Za-z0-9]{8,}")
T = TypeVar("T")


def is_official_hub(endpoint: str | None) -> bool:
    """True for huggingface.co (the default when ``endpoint`` is None) and its subdomains."""
    host = (urlparse(endpoint or DEFAULT_ENDPOINT).hostname or "").lower()
    return any(host == h or host.endswith("." + h) for h in HUB_HOSTS)


def disable_xet_for(endpoint: str | None) -> bool:
    """Turn Xet off in this process unless ``endpoint`` is huggingface.co; True if it was turned off.

    Sets ``HF_HUB_DISABLE_XET=1`` for huggingface_hub imported later (and child processes) and the
    runtime constant for an already imported one; the setting is process-wide.
    """
    if is_official_hub(endpoint):
        return False
    os.environ["HF_HUB_DISABLE_XET"] = "1"
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        constants.HF_HUB_DISABLE_XET = True
    return True


def redact(text: object, *secrets: str | None) -> str:
    """TEXT with every given secret and anything shaped like a Hub token replaced by ``hf_***``."""
    out = str(text)
    for secret in secrets:
        if secret:
            out = out.replace(secret, "hf_***")
    return TOKEN_LIKE.sub("hf_***", out)


@dataclass(frozen=True)
class Hub:
    """An endpoint and the token to use there.  The token never appears in ``repr`` or messages."""

    endpoint: str
    token: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        return f"Hub(endpoint={self.endpoint!r}, token={'<set>' if self.token else None})"

    @classmethod
    def resolve(cls, endpoint: str | None = None, token: str | None = None) -> "Hub":
        """``endpoint`` else ``HF_ENDPOINT`` else huggingface.co; ``token`` else ``HF_TOKEN`` else the stored login.

        The stored login (``hf auth login``) is a huggingface.co token: it is never sent to another host.
        """
        url = (endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
        if not urlparse(url).scheme or not urlparse(url).hostname:
            raise InputError("--endpoint", f"not a URL: {url!r}")
        if token is None:
            from huggingface_hub import get_token

            token = get_token() if is_official_hub(url) else os.environ.get("HF_TOKEN")
        return cls(url, token or None)

    @property
    def host(self) -> str:
        return urlparse(self.endpoint).netloc

    def api(self) -> Any:
        """An ``HfApi`` bound to this endpoint and token (Xet off unless huggingface.co)."""
        disable_xet_for(self.endpoint)
        from huggingface_hub import HfApi

        return HfApi(endpoint=self.endpoint, token=self.token or False, library_name="tensorferry")

    def repo_url(self, repo_id: str) -> str:
        return f"{self.endpoint}/{repo_id}"


def hub_api(endpoint: str, token: str | None = None) -> Any:
    """An ``HfApi`` for ``endpoint`` with Xet turned off when needed, e.g. ``hub_api(url, token).whoami()``."""
    return Hub(endpoint.rstrip("/"), token).api()


def status_of(error: BaseException) -> int | None:
    """The HTTP status of a huggingface_hub error, if it has one."""
    response = getattr(error, "response", None)
    return getattr(response, "status_code", None)


def is_transient(error: BaseException) -> bool:
    """Rate limits, server errors and dropped connections: a request that did nothing and may be retried."""
    import httpx2

    return status_of(error) in TRANSIENT_STATUS or isinstance(error, httpx2.TransportError)


def retry_after(error: BaseException, attempt: int, base: float = 1.0, cap: float = 30.0) -> float:
    """Seconds to wait: the server's ``Retry-After`` (seconds), else exponential backoff up to ``cap``.

    >>> retry_after(ValueError(), 3), retry_after(ValueError(), 9, base=0.25, cap=4.0)
    (8.0, 4.0)
    """
    headers = getattr(getattr(error, "response", None), "headers", None) or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    if value is not None and str(value).strip().isdigit():
        return min(float(value), 120.0)
    return min(base * 2 ** attempt, cap)


def call(fn: Callable[..., T], *args: Any, what: str, hub: Hub | None = None, retries: int = 5,
         passthrough: tuple[type[BaseException], ...] = (), **kwargs: Any) -> T:
    """``fn(*args, **kwargs)``, retried on transient failures; anything else becomes a ``HubError`` naming WHAT.

    Exceptions in ``passthrough`` (e.g. ``RepositoryNotFoundError``) reach the caller unchanged.
    Only use it for requests that are safe to repeat (reads, ``exist_ok`` creations, uploads by hash).
    """
    for attempt in range(retries + 1):
        try:
            return fn(*args, **kwargs)
        except passthrough:
            raise
        except Exception as e:  # noqa: BLE001 - every Hub failure is mapped, with the token scrubbed
            if attempt < retries and is_transient(e):
                time.sleep(retry_after(e, attempt))
                continue
            raise hub_error(what, e, hub) from None
    raise AssertionError("unreachable")


def hub_error(what: str, error: BaseException, hub: Hub | None = None) -> HubError:
    """A ``HubError`` with the Hub's message, its status, and no token in it."""
    status = status_of(error)
    lines = [line for line in str(error).splitlines() if line.strip()]
    message = lines[0] if lines else type(error).__name__
    server = getattr(error, "server_message", None)
    if server and server not in message:
        message += f" ({server})"
    prefix = f"HTTP {status}: " if status and str(status) not in message else ""
    error_ = HubError(what, redact(prefix + message, hub.token if hub else None))
    error_.status = status
    return error_


# downloads ----------------------------------------------------------------------------------------
def source_framework(files: Sequence[str]) -> str | None:
    """The framework whose weights a repo's file list holds, in order of preference (safetensors first).

    >>> source_framework(["README.md", "tf_model.h5", "flax_model.msgpack"])
    'tf'
    """
    names = set(files)
    for fw, f in STANDARD:
        if f.single in names or f.index in names:
            return fw
    return None


def patterns_for(frameworks: Sequence[str], files: Sequence[str]) -> list[str]:
    """The download patterns of FRAMEWORKS' weights present in FILES (.bin only where no safetensors)."""
    names, out = set(files), []
    for fw in frameworks:
        chosen = [f for f_fw, f in STANDARD if f_fw == fw and (f.single in names or f.index in names)][:1]
        out += chosen[0].patterns if chosen else FILES[fw].patterns
    return out


def fetch(repo_id: str, hub: Hub, frameworks: Sequence[str] | None = None, *, revision: str | None = None,
          cache_dir: str | None = None, local_files_only: bool = False, extra: Sequence[str] = (CONFIG,),
          or_source: bool = False) -> tuple[Path, dict]:
    """Download ``config.json`` and the weights of FRAMEWORKS (default: the repo's source variant only).

    ``or_source``: when the repo holds none of FRAMEWORKS, download its source variant instead.

    Returns the snapshot folder in the HF cache and a record ``{"id", "revision", "sha", "endpoint",
    "framework"}``; ``sha`` is the commit the revision resolved to, so every file comes from one commit.
    """
    if not REPO_ID.match(repo_id) or "/" not in repo_id:
        raise InputError(repo_id, "not a Hub repo id (owner/name)")
    from huggingface_hub.errors import (GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError,
                                        RevisionNotFoundError)

    api = hub.api()
    known = (RepositoryNotFoundError, GatedRepoError, RevisionNotFoundError, LocalEntryNotFoundError)
    try:
        if local_files_only:
            sha, files = revision or "main", None
        else:
            info = call(api.model_info, repo_id, revision=revision, what=repo_id, hub=hub, passthrough=known)
            sha, files = info.sha, [s.rfilename for s in info.siblings or []]
        wanted = list(frameworks) if frameworks else [source_framework(files or [])] if files is not None else ["pt"]
        if or_source and files is not None and not any(n in files for fw in wanted for n in FILES[fw].names):
            wanted = [source_framework(files)]
        if wanted == [None]:
            raise InputError(repo_id, "holds no weights under a standard name (model.safetensors, pytorch_model.bin, "
                                      "tf_model.h5, flax_model.msgpack or their .index.json)")
        allow = [*extra, *patterns_for(wanted, files or [])]
        folder = Path(call(api.snapshot_download, repo_id, revision=sha, allow_patterns=allow, cache_dir=cache_dir,
                           local_files_only=local_files_only, what=repo_id, hub=hub, passthrough=known))
    except (RepositoryNotFoundError, GatedRepoError) as e:
        raise InputError(repo_id, f"repository not found or not accessible on {hub.host} ({type(e).__name__})") from None
    except RevisionNotFoundError:
        raise InputError(repo_id, f"no revision {revision!r}") from None
    except LocalEntryNotFoundError:
        raise InputError(repo_id, "not in the cache (--local-files-only) or the Hub cannot be reached") from None
    return folder, {"id": repo_id, "revision": revision or "main", "sha": sha, "endpoint": hub.endpoint,
                    "framework": wanted[0] if len(wanted) == 1 else None}


def resolve(target: str, frameworks: list[str] | None = None, *, revision: str | None = None, token: str | None = None,
            cache_dir: str | None = None, local_files_only: bool = False) -> tuple[Path, dict | None]:
    """A local folder as is, or a Hub repo downloaded (config, PyTorch weights and FRAMEWORKS') → (folder, record).

    >>> resolve("fixtures/checkpoints/cnn")
    (PosixPath('fixtures/checkpoints/cnn'), None)
    """
    if Path(target).exists():
        return Path(target), None
    if not REPO_ID.match(target):
        raise InputError(target, "no such folder, and not a Hub repo id (owner/name)")
    wanted = ["pt", *[fw for fw in (frameworks or ["tf", "flax"]) if fw != "pt"]]
    return fetch(target, Hub.resolve(None, token), wanted, revision=revision, cache_dir=cache_dir,
                 local_files_only=local_files_only)


def add_download_options(parser: Any) -> None:
    """The Hub options of commands that take a repo id: ``--revision``, ``--token``, ``--cache-dir``, ``--local-files-only``."""
    hub = parser.add_argument_group("Hub repo ids")
    hub.add_argument("--revision", help="branch, tag or commit")
    hub.add_argument("--token", help="Hub token (default: HF_TOKEN or the stored login); never printed")
    hub.add_argument("--cache-dir", help="huggingface_hub cache folder (default: HF_HOME's)")
    hub.add_argument("--local-files-only", action="store_true", help="use the cache only, no network")


def resolve_args(target: str, frameworks: list[str] | None, args: Any) -> tuple[Path, dict | None]:
    """``resolve`` with a command's parsed ``add_download_options`` arguments."""
    return resolve(target, frameworks, revision=args.revision, token=args.token, cache_dir=args.cache_dir,
                   local_files_only=args.local_files_only)


def redacted_command(argv: Sequence[str], token: str | None = None) -> str:
    """The command line as typed, with any token's value removed (for provenance in cards).

    >>> redacted_command(["tensorferry", "publish", "ckpt", "a/b", "--token", "hf_abcdefghijkl"])
    'tensorferry publish ckpt a/b --token ***'
    """
    out, hide = [], False
    for arg in argv:
        if hide:
            out.append("***")
            hide = False
        elif arg == "--token":
            out.append(arg)
            hide = True
        elif arg.startswith("--token="):
            out.append("--token=***")
        else:
            out.append(redact(arg, token))
    return " ".join(out)
