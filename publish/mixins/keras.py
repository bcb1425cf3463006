"""``KerasHubMixin``: ``class KNet(tf_keras.Model, KerasHubMixin)`` saves, pushes and loads every variant.

Its own weights are ``tf_keras``' ``save_weights`` h5 (``tf_model.h5``).  ``from_pretrained``
builds the model from ``config.json`` and calls it once on ``dummy_inputs`` (a property or
method of the class, as in transformers' TF models) so its variables exist, then loads the file
with Keras' own positional loader when the file's layers are exactly the model's, else through
model-guided conversion (a PyTorch or Flax push, or another instance's layer names).

>>> KerasHubMixin.framework
'tf'
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from tensorferry.converters.constants import FILES
from tensorferry.converters.errors import InputError

from .base import FrameworkHubMixin


class KerasHubMixin(FrameworkHubMixin):
    """huggingface_hub's ``ModelHubMixin`` for ``tf_keras.Model`` subclasses, writing every framework's variant."""

    framework = "tf"

    def __init_subclass__(cls, *args: Any, tags: list[str] | None = None, **kwargs: Any) -> None:
        kwargs["tags"] = [*(tags or []), "keras", "tf-keras"]
        super().__init_subclass__(*args, **kwargs)

    def _write_weights(self, folder: Path, max_shard_size: str | int) -> None:
        ensure_built(self)
        self.save_weights(str(folder / FILES["tf"].single))  # Keras 2's h5 layout: what transformers' TF loader reads

    @classmethod
    def _build(cls, **model_kwargs: Any) -> Any:
        return ensure_built(cls(**model_kwargs))

    @classmethod
    def _loads_directly(cls, model: Any, folder: Path) -> bool:
        """Whether the file lists exactly the model's layers and weights, under the model's own names."""
        import h5py

        from tensorferry.converters.guided.keras import layout

        path = folder / FILES["tf"].single
        if not path.exists():
            return False
        with h5py.File(path, "r") as f:
            names = [_text(n) for n in f.attrs.get("layer_names", [])]
            found = [(n, [_text(w).removesuffix(":0") for w in f[n].attrs.get("weight_names", [])]) for n in names]
        return [g for g in found if g[1]] == [g for g in layout(model) if g[1]]

    @classmethod
    def _load_weights(cls, model: Any, folder: Path) -> Any:
        model.load_weights(str(folder / FILES["tf"].single))
        return model


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def ensure_built(model: Any) -> Any:
    """MODEL with its variables: called once on its class's ``dummy_inputs`` when it has none yet.

    >>> class Built:
    ...     built, weights = True, ["kernel"]
    >>> model = Built()
    >>> ensure_built(model) is model
    True
    """
    if getattr(model, "built", False) and model.weights:
        return model
    dummy = getattr(model, "dummy_inputs", None)
    if dummy is None:
        raise InputError(type(model).__name__, "the Keras model has no variables yet: give the class `dummy_inputs` "
                                               "(an input to call it on once) or build it before saving")
    model(dummy() if callable(dummy) else dummy, training=False)
    return model
