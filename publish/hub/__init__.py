"""The local Hub: a Hub-compatible HTTP server, the offline default and the test peer.

Python API for the publisher:

    from tensorferry.publish.hub import LocalHub, create_token
    with LocalHub(data_dir) as hub:               # hub.url -> "http://127.0.0.1:PORT"
        token = create_token(data_dir, "me")
        api = tensorferry.publish.hub_io.hub_api(hub.url, token)   # Xet turned off for this endpoint
"""
from __future__ import annotations

from tensorferry.converters.lazy import exports

_EXPORTS = {"create_token": "auth", "LocalHub": "local", "local_hub": "local", "default_data_dir": "local",
            "write_token": "local", "serving": "local"}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = exports(__name__, _EXPORTS)
