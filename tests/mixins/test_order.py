"""Twins with several layers of one class and shape (an attention block's q, k, v, o) pair in creation
order, not name order (``k, o, q, v`` sorted): the saved variants keep the order of the model that wrote them."""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import functools

import numpy as np

from tensorferry.publish import FlaxHubMixin, KerasHubMixin, TorchHubMixin

D = 6
TOLERANCE = 5e-5


@functools.cache
def classes():
    import flax.linen as nn
    import tf_keras as keras
    import torch

    class Torch(torch.nn.Module, TorchHubMixin):
        def __init__(self, dim: int = D) -> None:
            super().__init__()
            self.q, self.k, self.v, self.o = (torch.nn.Linear(dim, dim) for _ in range(4))

        def forward(self, x):
            x = torch.as_tensor(x)
            return self.o(torch.tanh(self.q(x)) * self.k(x) + self.v(x))

    class Keras(keras.Model, KerasHubMixin):
        def __init__(self, dim: int = D) -> None:
            super().__init__()
            self.projections = [keras.layers.Dense(dim) for _ in range(4)]

        dummy_inputs = np.zeros((1, D), np.float32)

        def call(self, x):
            q, k, v, o = self.projections
            return o(keras.activations.tanh(q(x)) * k(x) + v(x))

    class Flax(nn.Module, FlaxHubMixin):
        dim: int = D

        def dummy_inputs(self):
            return np.zeros((1, D), np.float32)

        @nn.compact
        def __call__(self, x):
            q, k, v, o = (nn.Dense(self.dim) for _ in range(4))
            return o(nn.tanh(q(x)) * k(x) + v(x))

    return {"pt": Torch, "tf": Keras, "flax": Flax}


def _out(model, x) -> np.ndarray:
    y = model(x)
    return y.detach().numpy() if hasattr(y, "detach") else np.asarray(y)


def test_same_shaped_layers_pair_in_creation_order(tmp_path) -> None:
    import torch

    torch.manual_seed(0)
    x = np.random.default_rng(0).normal(size=(2, D)).astype(np.float32)
    first = classes()["pt"]().eval()
    first.save_pretrained(tmp_path / "pt")
    keras_first = classes()["tf"]()
    keras_first(x)
    keras_first.save_pretrained(tmp_path / "tf")
    for source, model in (("pt", first), ("tf", keras_first)):
        reference = _out(model, x)
        for target, cls in classes().items():
            got = _out(cls.from_pretrained(tmp_path / source), x)
            assert np.abs(got - reference).max() <= TOLERANCE, (source, target)


def test_tied_parameters_are_stored_once_and_tied_again(tmp_path) -> None:
    import json

    import torch
    from safetensors import safe_open

    class Tied(torch.nn.Module, TorchHubMixin):
        def __init__(self, vocab: int = 11, dim: int = 4) -> None:
            super().__init__()
            self.embed = torch.nn.Embedding(vocab, dim)
            self.head = torch.nn.Linear(dim, vocab, bias=False)
            self.head.weight = self.embed.weight

    model = Tied()
    model.save_pretrained(tmp_path)
    with safe_open(str(tmp_path / "model.safetensors"), "pt") as f:
        assert sorted(f.keys()) == ["embed.weight"]
        assert json.loads(f.metadata()["tensorferry.ties"]) == {"head.weight": "embed.weight"}
    back = Tied.from_pretrained(tmp_path)
    assert torch.equal(back.head.weight, model.embed.weight) and back.head.weight is back.embed.weight
    assert (tmp_path / "tf_model.h5").exists() and (tmp_path / "flax_model.msgpack").exists()
