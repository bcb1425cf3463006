"""Talking to a Hub with the unmodified ``huggingface_hub`` client: endpoints, Xet, downloads.

``huggingface_hub`` uploads through Xet by default and never falls back to LFS; the local Hub
(and any server that is not huggingface.co) does not speak Xet, so the client must turn it off.

>>> disable_xet_for("https://huggingface.co")
False
>>> disable_xet_for("http://127.0.0.1:8765")
True
>>> resolve("fixtures/checkpoints/cnn")
(PosixPath('fixtures/checkpoints/cnn'), None)
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from tensorferry.converters.constants import CONFIG, FILES, PICKLE_FILES
from tensorferry.converters.errors import HubError, InputError

HUB_HOSTS = ("huggingface.co", "hf.co")


REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")


def is_official_hub(endpoint: str | None) -> bool:
    """True for huggingface.co (the default when ``endpoint`` is None) and its subdomains."""
    host = (urlparse(endpoint or "https://huggingface.co").hostname or "").lower()
    return any(host == h or host.endswith("." + h) for h in HUB_HOSTS)


def disable_xet_for(endpoint: str | None) -> bool:
    """Turn Xet off in this process unless `endpoint` is huggingface.co; True if it was turned off.

    Sets `HF_HUB_DISABLE_XET=1` for huggingface_hub imported later (and child processes) and the
    runtime constant for an already imported one; the setting is process-wide.
    """
    if is_official_hub(endpoint):
        return False
    os.environ["HF_HUB_DISABLE_XET"] = "1"
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        constants.HF_HUB_DISABLE_XET = True
    return True


def hub_api(endpoint: str, token: str | None = None, **kwargs: Any) -> Any:
    """An `HfApi` for `endpoint` with Xet turned off when needed.

    Example: `hub_api("http://127.0.0.1:8765", token).whoami()`.
    """
    disable_xet_for(endpoint)
    from huggingface_hub import HfApi

    return HfApi(endpoint=endpoint, token=token, **kwargs)


def resolve(target: str, frameworks: list[str] | None = None, *, revision: str | None = None, token: str | None = None,
            cache_dir: str | None = None, local_files_only: bool = False) -> tuple[Path, dict | None]:
    """A local folder as is, or a Hub repo downloaded (config and the needed weights only) → (folder, repo record).

    The download goes through the huggingface_hub cache (``HF_HOME``, ``cache_dir``) from ``HF_ENDPOINT``.
    """
    if Path(target).exists():
        return Path(target), None
    if not REPO_ID.match(target):
        raise InputError(target, "no such folder, and not a Hub repo id (owner/name)")
    # HF_ENDPOINT read now, not when huggingface_hub was first imported.
    endpoint = os.environ.get("HF_ENDPOINT") or None
    disable_xet_for(endpoint)
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError,
                                        RevisionNotFoundError)

    wanted = ["pt", *[fw for fw in (frameworks or ["tf", "flax"]) if fw != "pt"]]
    kwargs = dict(repo_type="model", revision=revision, token=token, cache_dir=cache_dir, local_files_only=local_files_only,
                  endpoint=endpoint)
    try:
        folder = Path(snapshot_download(target, allow_patterns=[CONFIG, *[p for fw in wanted for p in FILES[fw].patterns]], **kwargs))
        if not any((folder / name).exists() for name in FILES["pt"].names):
            folder = Path(snapshot_download(target, allow_patterns=[CONFIG, *PICKLE_FILES.patterns], **kwargs))
    except (RepositoryNotFoundError, GatedRepoError) as e:
        raise InputError(target, f"repository not found or not accessible ({type(e).__name__})") from None
    except RevisionNotFoundError:
        raise InputError(target, f"no revision {revision!r}") from None
    except LocalEntryNotFoundError:
        raise InputError(target, "not in the cache (--local-files-only) or the Hub cannot be reached") from None
    except HfHubHTTPError as e:  # the message carries the URL, never the token
        raise HubError(target, f"download failed: {str(e).splitlines()[0]}") from None
    return folder, {"id": target, "revision": revision or "main", "endpoint": endpoint or "https://huggingface.co"}


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
