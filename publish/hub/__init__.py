"""A Hub-compatible HTTP server: the offline default and the test peer.

Python API for the publisher:

    from tensorferry.publish.hub import LocalHub, create_token, disable_xet_for
    with LocalHub(data_dir) as hub:               # hub.url -> "http://127.0.0.1:PORT"
        token = create_token(data_dir, "me")
        disable_xet_for(hub.url)                   # before uploading with huggingface_hub
"""
from __future__ import annotations

from .auth import create_token
from .client import disable_xet_for, hub_api, is_official_hub
from .local import LocalHub, default_data_dir, local_hub

__all__ = ["LocalHub", "local_hub", "create_token", "disable_xet_for", "hub_api", "is_official_hub",
           "default_data_dir"]
