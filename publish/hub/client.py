"""Client-side settings for talking to a Hub that is not huggingface.co.

`huggingface_hub` uploads through Xet by default and never falls back to LFS; this server does
not speak Xet, so the client must turn it off (contract §2).

>>> disable_xet_for("https://huggingface.co")
False
>>> disable_xet_for("http://127.0.0.1:8765")
True
"""
from __future__ import annotations

import os
import sys
from typing import Any
from urllib.parse import urlparse

HUB_HOSTS = ("huggingface.co", "hf.co")


def is_official_hub(endpoint: str | None) -> bool:
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
