"""Tiny twins for the mixin tests: one PyTorch model (embedding, conv, norm, linear) and its Keras and
Flax twins, written the way people write them (Keras and linen name their layers themselves)."""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import functools
from dataclasses import dataclass

import numpy as np

from tensorferry.publish import FlaxHubMixin, KerasHubMixin, TorchHubMixin

SEQ = 6


def tokens(vocab: int = 20, batch: int = 2, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, vocab, (batch, SEQ)).astype(np.int32)


@functools.cache
def torch_classes():
    import torch
    from torch import nn

    class Net(nn.Module, TorchHubMixin, library_name="tiny-lib", tags=["text"], license="mit",
              repo_url="https://example.org/tiny-lib"):
        def __init__(self, vocab: int = 20, dim: int = 8, hidden: int = 12, classes: int = 5) -> None:
            super().__init__()
            self.embed = nn.Embedding(vocab, dim)
            self.conv = nn.Conv1d(dim, hidden, 3, padding=1)
            self.norm = nn.LayerNorm(hidden, eps=1e-5)
            self.head = nn.Linear(hidden, classes)

        def forward(self, ids):
            x = self.conv(self.embed(torch.as_tensor(ids, dtype=torch.long)).transpose(1, 2)).transpose(1, 2)
            return self.head(self.norm(x).mean(1))

    return Net


@functools.cache
def keras_classes():
    import tensorflow as tf
    import tf_keras as keras

    layers = keras.layers

    class KNet(keras.Model, KerasHubMixin, library_name="tiny-lib"):
        def __init__(self, vocab: int = 20, dim: int = 8, hidden: int = 12, classes: int = 5) -> None:
            super().__init__()
            self.embed = layers.Embedding(vocab, dim)
            self.conv = layers.Conv1D(hidden, 3, padding="same")
            self.norm = layers.LayerNormalization(epsilon=1e-5)
            self.head = layers.Dense(classes)

        @property
        def dummy_inputs(self):
            return np.zeros((1, SEQ), np.int32)

        def call(self, ids, training=False):
            return self.head(tf.reduce_mean(self.norm(self.conv(self.embed(ids))), 1))

    return KNet


@functools.cache
def flax_classes():
    import flax.linen as nn

    class FNet(nn.Module, FlaxHubMixin, library_name="tiny-lib"):
        vocab: int = 20
        dim: int = 8
        hidden: int = 12
        classes: int = 5

        def dummy_inputs(self):
            return np.zeros((1, SEQ), np.int32)

        @nn.compact
        def __call__(self, ids):
            x = nn.Embed(self.vocab, self.dim)(ids)
            x = nn.LayerNorm(epsilon=1e-5)(nn.Conv(self.hidden, (3,), padding="SAME")(x))
            return nn.Dense(self.classes)(x.mean(1))

    return FNet


def torch_model(seed: int = 0, **config):
    import torch

    torch.manual_seed(seed)
    model = torch_classes()(**config)
    with torch.no_grad():  # non-default norm parameters: a mix-up would show
        model.norm.weight.copy_(1 + 0.3 * torch.randn_like(model.norm.weight))
        model.norm.bias.copy_(0.2 * torch.randn_like(model.norm.bias))
    return model.eval()


def keras_model(**config):
    import tf_keras as keras

    keras.utils.set_random_seed(1)
    model = keras_classes()(**config)
    model(model.dummy_inputs)
    return model


def flax_model(**config):
    import jax

    module = flax_classes()(**config)
    return module.bind(module.init(jax.random.PRNGKey(2), module.dummy_inputs()))


def run(model, ids: np.ndarray) -> np.ndarray:
    """The model's output on IDS as numpy, whatever its framework."""
    if hasattr(model, "state_dict"):
        import torch

        with torch.no_grad():
            return model(ids).numpy()
    if hasattr(model, "variables") and hasattr(model, "apply"):
        return np.asarray(model(ids))
    return np.asarray(model(ids, training=False))


@dataclass
class Sizes:
    vocab: int = 20
    dim: int = 8


def sized_class():
    """A PyTorch model whose config is a dataclass argument, encoded through ``coders``."""
    import torch
    from torch import nn

    class Sized(nn.Module, TorchHubMixin, coders={Sizes: (lambda s: {"vocab": s.vocab, "dim": s.dim},
                                                          lambda d: Sizes(**d))}):
        def __init__(self, sizes: Sizes = Sizes(), scale: float = 1.0) -> None:
            super().__init__()
            self.sizes, self.scale = sizes, scale
            self.embed = nn.Embedding(sizes.vocab, sizes.dim)

        def forward(self, ids):
            return self.embed(torch.as_tensor(ids, dtype=torch.long)) * self.scale

    return Sized
