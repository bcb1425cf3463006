"""Training checkpoints: what ``PushToHubCallback(checkpoint=True)`` pushes in ``checkpoint/``, and ``load_checkpoint``.

``state`` holds the format and ``load_checkpoint``; ``tree`` splits a state dict into JSON and
tensors (nothing pickled); ``torch``, ``keras`` and ``flax`` save and restore each framework's
optimizer.  Names import on first use, so importing this package imports no framework.

>>> from tensorferry.publish.resume import FORMAT
>>> FORMAT
'tensorferry.checkpoint/1'
"""
from __future__ import annotations

from tensorferry.converters.lazy import exports

_EXPORTS = {"load_checkpoint": "state", "Resumed": "state", "FORMAT": "state"}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = exports(__name__, _EXPORTS)
