"""Framework mixins on ``huggingface_hub.ModelHubMixin``: push a model once, load it in all three frameworks.

``TorchHubMixin`` (``torch``), ``KerasHubMixin`` (``keras``) and ``FlaxHubMixin`` (``flax``) share
``base.FrameworkHubMixin``: ``save_pretrained`` writes every variant, ``push_to_hub`` publishes them in
one commit, ``from_pretrained`` loads any of them into the model (twins pair by structure).
Names import on first use, so importing this package imports no framework.

>>> from tensorferry.publish.mixins import TorchHubMixin
>>> TorchHubMixin.framework
'pt'
"""
from __future__ import annotations

from tensorferry.converters.lazy import exports

_EXPORTS = {"TorchHubMixin": "torch", "KerasHubMixin": "keras", "FlaxHubMixin": "flax", "FrameworkHubMixin": "base"}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = exports(__name__, _EXPORTS)
