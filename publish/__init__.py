"""Publishing: one Hub repo per model with every framework variant in one commit, loading, the local Hub.

``publish`` (``publisher``) converts, verifies and pushes; ``load`` / ``pull`` (``loading``) read one
framework's weights back; ``hub_io`` talks to a Hub with the unmodified huggingface_hub client;
``card`` writes the shared model card; ``hub/`` is the local Hub server; ``mixins`` (``TorchHubMixin``,
``KerasHubMixin``, ``FlaxHubMixin``) and ``callback`` (``PushToHubCallback``) give models
``save_pretrained`` / ``push_to_hub`` / ``from_pretrained``; ``load_checkpoint`` (``resume``) resumes
training from a push with ``checkpoint=True``.  Names import on first use.

>>> from tensorferry.publish import load, publish
>>> sorted(load("fixtures/checkpoints/recurrent", "pt"))[:2]
['conv.bias', 'conv.weight']
"""
from __future__ import annotations

from tensorferry.converters.lazy import exports

_EXPORTS = {
    "publish": "publisher", "PublishResult": "publisher", "load": "loading", "pull": "loading", "Hub": "hub_io",
    "TorchHubMixin": "mixins.torch", "KerasHubMixin": "mixins.keras", "FlaxHubMixin": "mixins.flax",
    "PushToHubCallback": "callback", "load_checkpoint": "resume.state", "Resumed": "resume.state",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = exports(__name__, _EXPORTS)
