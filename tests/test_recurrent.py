"""Stacked and bidirectional LSTM/GRU in the general rules: bit-exact round trips, and Keras/Flax twins
named by the rules (one Keras layer per PyTorch layer ``l{k}``, ``Bidirectional`` for ``_reverse``;
linen ``l{k}`` with ``forward_rnn``/``backward_rnn``) computing PyTorch's outputs."""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
from conftest import assert_same_checkpoint

from tensorferry.converters import LayoutError, convert, open_source

TOLERANCE = 5e-5
IN, H1, H2, T = 4, 3, 5, 7


def _torch_model(bias: bool = True):
    import torch
    from torch import nn

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(IN, H1, num_layers=2, bidirectional=True, batch_first=True, bias=bias)
            self.gru = nn.GRU(2 * H1, H2, num_layers=3, batch_first=True, bias=bias)
            self.bigru = nn.GRU(H2, H1, bidirectional=True, batch_first=True, bias=bias)
            self.lstm3 = nn.LSTM(2 * H1, H2, num_layers=3, batch_first=True, bias=bias)

        def forward(self, x):
            for rnn in (self.lstm, self.gru, self.bigru, self.lstm3):
                x, _ = rnn(x)
            return x

    torch.manual_seed(3)
    model = Encoder().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-0.6, 0.6)  # biases too: bias_ih and bias_hh differ everywhere
    return model


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from safetensors.torch import save_file

    d = tmp_path_factory.mktemp("rnn")
    model = _torch_model()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, d / "model.safetensors")
    x = np.random.default_rng(0).standard_normal((2, T, IN)).astype(np.float32)
    import torch

    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    return d, x, expected


@pytest.mark.parametrize("bias", [True, False])
def test_round_trips_are_bit_exact(tmp_path, bias):
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in _torch_model(bias).state_dict().items()}, tmp_path / "m.safetensors")
    convert(tmp_path / "m.safetensors", tmp_path / "tf", to=["tf"])
    convert(tmp_path / "tf", tmp_path / "back-tf", to=["pt"])
    assert_same_checkpoint(tmp_path / "m.safetensors", tmp_path / "back-tf" / "model.safetensors")
    convert(tmp_path / "tf", tmp_path / "flax", to=["flax"])
    convert(tmp_path / "flax", tmp_path / "back", to=["pt"])
    if bias:
        assert_same_checkpoint(tmp_path / "m.safetensors", tmp_path / "back" / "model.safetensors")
    else:  # flax cells always have biases: a bias-free module comes back with zero biases
        back = open_source(tmp_path / "back")
        assert not any(back.load(n).any() for n in back.infos if n.split(".")[1].startswith("bias"))
        assert {n for n in back.infos if ".weight" in n} == set(open_source(tmp_path / "m.safetensors").infos)
    names = set(open_source(tmp_path / "tf").infos)
    assert "model/lstm/l1/backward_lstm/lstm_cell/recurrent_kernel" in names
    assert "model/gru/l2/gru_cell/kernel" in names and "model/bigru/forward_gru/gru_cell/kernel" in names
    assert ("model/gru/l2/gru_cell/bias" in names) == bias
    flax = set(open_source(tmp_path / "flax").infos)
    assert "lstm/l1/backward_rnn/cell/hf/kernel" in flax and "lstm3/l2/ii/kernel" in flax


def test_without_side_data_the_functions_are_kept(tmp_path, checkpoint):
    """Files without side data (someone else's): biases come back summed into bias_ih, outputs equal."""
    import torch

    src, x, expected = checkpoint
    for fw in ("tf", "flax"):
        convert(src, tmp_path / fw, to=[fw], extras=False)
        convert(tmp_path / fw, tmp_path / f"back-{fw}", to=["pt"])
        model = _torch_model()
        back = open_source(tmp_path / f"back-{fw}")
        assert not back.load("lstm.bias_hh_l1_reverse").any()
        model.load_state_dict({n: torch.from_numpy(back.load(n).copy()) for n in back.infos})
        with torch.no_grad():
            got = model(torch.from_numpy(x)).numpy()
        assert np.abs(got - expected).max() <= TOLERANCE, fw


def test_proj_size_is_refused_for_tf_and_flax(tmp_path):
    import torch
    from safetensors.torch import save_file

    lstm = torch.nn.LSTM(4, 6, num_layers=2, proj_size=3)
    save_file({f"enc.{k}": v.contiguous() for k, v in lstm.state_dict().items()}, tmp_path / "p.safetensors")
    for fw in ("tf", "flax"):
        with pytest.raises(LayoutError, match="proj_size=3.*no counterpart") as err:
            convert(tmp_path / "p.safetensors", tmp_path / fw, to=[fw])
        assert "enc.weight_hr_l0" in str(err.value)
    convert(tmp_path / "p.safetensors", tmp_path / "pt", to=["pt"])  # PyTorch holds it as it is
    assert_same_checkpoint(tmp_path / "p.safetensors", tmp_path / "pt" / "model.safetensors")


def _keras_twin():
    import tf_keras as k

    L = k.layers

    class Stack(L.Layer):
        """A PyTorch module of several layers: one Keras layer per PyTorch layer, named l0, l1, …"""

        def __init__(self, layers, **kw) -> None:
            super().__init__(**kw)
            self.stack = layers

        def call(self, x):
            for layer in self.stack:
                x = layer(x)
            return x

    seq = dict(return_sequences=True)

    class Encoder(k.Model):
        def __init__(self) -> None:
            super().__init__(name="model")
            self.lstm = Stack([L.Bidirectional(L.LSTM(H1, **seq, name="lstm"), name=f"l{i}") for i in range(2)], name="lstm")
            self.gru = Stack([L.GRU(H2, **seq, reset_after=True, name=f"l{i}") for i in range(3)], name="gru")
            self.bigru = L.Bidirectional(L.GRU(H1, **seq, reset_after=True, name="gru"), name="bigru")
            self.lstm3 = Stack([L.LSTM(H2, **seq, name=f"l{i}") for i in range(3)], name="lstm3")

        def call(self, x):
            return self.lstm3(self.bigru(self.gru(self.lstm(x))))

    model = Encoder()
    model(np.zeros((1, T, IN), np.float32))
    return model


def test_keras_twin_named_by_the_rules(tmp_path, checkpoint):
    src, x, expected = checkpoint
    convert(src, tmp_path, to=["tf"], structure=_torch_model())  # the model's order, for Keras' positional loader
    model = _keras_twin()
    names = {w.name.removesuffix(":0") for w in model.weights}
    assert names == set(open_source(tmp_path).infos)
    model.load_weights(str(tmp_path / "tf_model.h5"))  # Keras' own positional loader
    assert np.abs(model(x).numpy() - expected).max() <= TOLERANCE


def _flax_twin():
    import flax.linen as nn

    class UniStack(nn.Module):
        cell: type
        features: int
        n: int

        @nn.compact
        def __call__(self, x):
            for i in range(self.n):  # the cell named l{i} holds the layer's gates
                x = nn.RNN(self.cell(self.features, name=f"l{i}"))(x)
            return x

    class BiStack(nn.Module):
        """linen's Bidirectional names its halves forward_rnn/backward_rnn, each with its `cell`."""

        cell: type
        features: int
        n: int

        def setup(self) -> None:
            for i in range(self.n):
                setattr(self, f"l{i}", nn.Bidirectional(nn.RNN(self.cell(self.features)), nn.RNN(self.cell(self.features))))

        def __call__(self, x):
            for i in range(self.n):
                x = getattr(self, f"l{i}")(x)
            return x

    class Encoder(nn.Module):
        def setup(self) -> None:
            self.lstm = BiStack(nn.LSTMCell, H1, 2)
            self.gru = UniStack(nn.GRUCell, H2, 3)
            self.bigru = nn.Bidirectional(nn.RNN(nn.GRUCell(H1)), nn.RNN(nn.GRUCell(H1)))
            self.lstm3 = UniStack(nn.LSTMCell, H2, 3)

        def __call__(self, x):
            return self.lstm3(self.bigru(self.gru(self.lstm(x))))

    return Encoder()


def test_flax_twin_named_by_the_rules(tmp_path, checkpoint):
    import jax
    from flax import serialization
    from flax.traverse_util import flatten_dict

    src, x, expected = checkpoint
    convert(src, tmp_path, to=["flax"])
    module = _flax_twin()
    variables = module.init(jax.random.PRNGKey(0), x[:1])
    data = (tmp_path / "flax_model.msgpack").read_bytes()
    want = {k: v.shape for k, v in flatten_dict(variables["params"], sep="/").items()}
    got = {k: v.shape for k, v in flatten_dict(serialization.msgpack_restore(data), sep="/").items() if not k.startswith("__")}
    assert want == got
    params = serialization.from_bytes(variables["params"], data)  # a params-only tree is stored bare
    assert np.abs(np.asarray(module.apply({"params": params}, x)) - expected).max() <= TOLERANCE
