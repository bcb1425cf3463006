"""Weight norm: ``parametrizations.weight.original0/1`` and the older ``weight_g``/``weight_v``, named as
transformers names them in TF and Flax (``weight_g``, ``weight_v``), both forms back bit-exact."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_same_checkpoint

from tensorferry.converters import convert, open_source, plan_for
from tensorferry.converters.kinds import kinds_from_torch


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    import torch
    from safetensors.torch import save_file
    from torch.nn.utils import parametrizations, weight_norm

    class Vocoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.pre = parametrizations.weight_norm(torch.nn.Conv1d(4, 6, 3))
            self.up = parametrizations.weight_norm(torch.nn.ConvTranspose1d(6, 4, 4, stride=2))
            self.post = weight_norm(torch.nn.Conv1d(4, 4, 3, groups=2), dim=2)  # the deprecated form
            self.head = parametrizations.weight_norm(torch.nn.Linear(4, 2), dim=1)

    torch.manual_seed(0)
    model = Vocoder()
    path = tmp_path_factory.mktemp("wn") / "model.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path)
    return path, model


def test_kinds_and_names(checkpoint):
    path, model = checkpoint
    assert kinds_from_torch(model) == {"pre": "weight_norm", "up": "weight_norm", "post": "conv", "head": "weight_norm"}
    plan = plan_for(open_source(path), ["tf", "flax"])
    assert {m: d.kind for m, d in plan.decisions.items() if d.kind == "weight_norm"} == {"pre": "weight_norm", "up": "weight_norm", "head": "weight_norm"}
    tf = {m.sources[0]: (m.targets[0][0], m.op) for m, _ in plan.targets["tf"] if not m.targets[0][0].startswith("__")}
    side = {n: s for m, _ in plan.targets["tf"] for n, s, _ in m.targets if n.startswith("__")}
    assert side == {f"__tensorferry__/{m}.parametrizations.weight.original0": s for m, s in (("pre", (6, 1, 1)), ("up", (6, 1, 1)), ("head", (1, 4)))}
    assert tf["pre.parametrizations.weight.original0"] == ("model/pre/weight_g", "identity")
    assert tf["up.parametrizations.weight.original1"] == ("model/up/weight_v", "identity")  # g and v keep PyTorch's axes
    assert tf["post.weight_g"] == ("model/post/weight_g", "identity")
    flax = {m.sources[0]: m.targets[0][0] for m, _ in plan.targets["flax"] if not m.targets[0][0].startswith("__")}
    assert flax["head.parametrizations.weight.original1"] == "head/weight_v" and flax["head.bias"] == "head/bias"


@pytest.mark.parametrize("fw", ["tf", "flax"])
def test_both_forms_come_back_bit_exact(tmp_path, checkpoint, fw):
    path, _ = checkpoint
    convert(path, tmp_path / fw, to=[fw])
    convert(tmp_path / fw, tmp_path / "back", to=["pt"])
    assert_same_checkpoint(path, tmp_path / "back" / "model.safetensors")


def test_without_side_data_weight_g_reads_as_the_older_form(tmp_path, checkpoint):
    """A file someone else wrote says only weight_g/weight_v: the older form, which PyTorch still loads."""
    import torch
    from torch.nn.utils import weight_norm

    path, _ = checkpoint
    convert(path, tmp_path / "tf", to=["tf"], extras=False)
    convert(tmp_path / "tf", tmp_path / "back", to=["pt"])
    back = open_source(tmp_path / "back")
    assert {"pre.weight_g", "pre.weight_v", "pre.bias"} <= set(back.infos)
    src = open_source(path)
    assert np.array_equal(back.load("pre.weight_v"), src.load("pre.parametrizations.weight.original1"))
    old = weight_norm(torch.nn.Conv1d(4, 6, 3))
    old.load_state_dict({k[4:]: torch.from_numpy(back.load(k).copy()) for k in back.infos if k.startswith("pre.")})


def test_guided_into_a_keras_layer_of_its_own_and_back(tmp_path):
    """A twin that writes weight norm by hand (add_weight g, v, b): paired tensor by tensor, both ways."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    import tf_keras as keras
    import torch
    from safetensors.torch import load_file
    from torch.nn.utils import parametrizations

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = parametrizations.weight_norm(torch.nn.Conv1d(4, 6, 3))
            self.fc = torch.nn.Linear(6, 2)

        def forward(self, x):  # (batch, channels, time)
            return self.fc(self.conv(x).mean(-1))

    class WeightNormConv(keras.layers.Layer):
        def build(self, shape) -> None:
            self.v = self.add_weight(name="v", shape=(6, 4, 3))  # PyTorch's (out, in, k), as transformers' TF wav2vec2
            self.g = self.add_weight(name="g", shape=(6, 1, 1))
            self.b = self.add_weight(name="b", shape=(6,))

        def call(self, x):  # (batch, time, channels)
            w = self.g * self.v / tf.norm(self.v, axis=(1, 2), keepdims=True)
            return tf.nn.conv1d(x, tf.transpose(w, (2, 1, 0)), 1, "VALID") + self.b

    class Twin(keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.wn, self.head = WeightNormConv(), keras.layers.Dense(2)

        def call(self, x):
            return self.head(tf.reduce_mean(self.wn(x), 1))

    torch.manual_seed(0)
    net = Net().eval()
    torch.save(net.state_dict(), tmp_path / "net.pt")
    twin = Twin()
    twin(np.zeros((1, 5, 4), np.float32))
    result = convert(tmp_path / "net.pt", tmp_path / "tf", to=["tf"], models={"tf": twin})
    rows = {r["source"]: r["target"] for r in result.plan.pairings["tf"]}
    assert rows["conv.parametrizations.weight.original1"].endswith("/v") and rows["conv.parametrizations.weight.original0"].endswith("/g")
    twin.load_weights(str(tmp_path / "tf" / "tf_model.h5"))
    x = np.random.default_rng(0).standard_normal((2, 4, 5)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    assert np.abs(twin(x.transpose(0, 2, 1)).numpy() - expected).max() <= 5e-5
    fresh = Net()
    convert(tmp_path / "tf" / "tf_model.h5", tmp_path / "back", to=["pt"], models={"pt": fresh})
    state = load_file(str(tmp_path / "back" / "model.safetensors"))
    fresh.load_state_dict(state, strict=True)
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())
