"""The local Hub: a Hub-compatible HTTP server, the offline default and the test peer.

Python API for the publisher:

    from tensorferry.publish.hub import LocalHub, create_token
    with LocalHub(data_dir) as hub:               # hub.url -> "http://127.0.0.1:PORT"
        token = create_token(data_dir, "me")
        api = tensorferry.publish.hub_io.hub_api(hub.url, token)   # Xet turned off for this endpoint
"""
from __future__ import annotations

from .auth import create_token
from .local import LocalHub, default_data_dir, local_hub

__all__ = ["LocalHub", "local_hub", "create_token", "default_data_dir"]
