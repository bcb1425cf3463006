"""Training checkpoints: the state dict found inside nested pickles, prefixes stripped, --key and --drop."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from conftest import assert_same_checkpoint, checkpoint_dir

from tensorferry.converters import InputError, convert, open_source
from tensorferry.converters.selection import find_state_dict


@pytest.fixture(scope="module")
def state():
    """The CNN fixture's state dict as torch tensors (BatchNorm counters included)."""
    import torch

    src = open_source(checkpoint_dir("cnn"))
    return {k: torch.from_numpy(src.load(k).copy()) for k in src.infos}


def _save(path, obj):
    import torch

    torch.save(obj, path)
    return path


def _optimizer_state(state):
    import torch

    params = [torch.nn.Parameter(v.float().clone()) for v in state.values() if v.is_floating_point()]
    opt = torch.optim.Adam(params)
    sum(p.sum() for p in params).backward()
    opt.step()  # per-parameter state: int keys → {"step", "exp_avg", "exp_avg_sq"} tensors
    return opt.state_dict()


CONTAINERS = {
    "state_dict": lambda sd, opt: {"state_dict": sd, "epoch": 3},
    "model": lambda sd, opt: {"model": sd, "optimizer": opt, "args": {"lr": 0.1, "layers": [1, 2]}},
    "model_state": lambda sd, opt: {"step": 1200, "model_state": sd, "optimizer_state": opt, "config": {"width": 8}},
    "nested": lambda sd, opt: {"checkpoint": {"weights": sd, "meta": {"step": 5}}, "optimizer_state": opt},
}


@pytest.mark.parametrize("shape", sorted(CONTAINERS))
def test_state_dict_found_in_training_checkpoint(tmp_path, state, shape):
    src = _save(tmp_path / "train.pt", CONTAINERS[shape](state, _optimizer_state(state)))
    result = convert(src, tmp_path / "out", to=["pt"])
    assert_same_checkpoint(checkpoint_dir("cnn") / "model.safetensors", tmp_path / "out" / "model.safetensors")
    key = {"nested": "checkpoint.weights"}.get(shape, shape)
    assert result.checkpoint["key"] == key
    assert result.checkpoint["ignored"] and result.checkpoint["stripped"] == []
    if shape != "state_dict":
        assert any(i.startswith("optim") for i in result.checkpoint["ignored"]), result.checkpoint


@pytest.mark.parametrize("prefix", ["module.", "_orig_mod.", "module._orig_mod."])
def test_wrapper_prefixes_are_stripped(tmp_path, state, prefix):
    src = _save(tmp_path / "ddp.pth", {prefix + k: v for k, v in state.items()})
    result = convert(src, tmp_path / "out", to=["pt"])
    assert_same_checkpoint(checkpoint_dir("cnn") / "model.safetensors", tmp_path / "out" / "model.safetensors")
    assert "".join(result.checkpoint["stripped"]) == prefix and result.checkpoint["key"] is None


def test_lightning_checkpoint(tmp_path, state, cli):
    import torch

    ckpt = {"epoch": 2, "global_step": 40, "pytorch-lightning_version": "2.4.0",
            "state_dict": {"net." + k: v for k, v in state.items()},
            "loops": {"fit_loop": {"state_dict": {}}}, "callbacks": {"EarlyStopping": {"best_score": torch.tensor(0.5), "wait_count": 0}},
            "optimizer_states": [_optimizer_state(state)], "lr_schedulers": [], "hyper_parameters": {"lr": 0.001}}
    src = _save(tmp_path / "last.ckpt", ckpt)
    code, out, err = cli("convert", src, "--to", "pt,tf", "--out", tmp_path / "out", "--kind", "dw=depthwise:2")
    assert code == 0, err
    assert "checkpoint: state dict taken from 'state_dict'" in err and "stripped prefix 'net.'" in err
    assert "optimizer_states (list)" in err and "hyper_parameters (dict)" in err
    assert_same_checkpoint(checkpoint_dir("cnn") / "model.safetensors", tmp_path / "out" / "model.safetensors")


def test_model_and_ema_is_ambiguous_until_key_chooses(tmp_path, state, cli):
    ema = {k: v + 1 if v.is_floating_point() else v for k, v in state.items()}
    src = _save(tmp_path / "ema.pt", {"model": state, "ema": ema, "step": 9})
    code, _, err = cli("convert", src, "--to", "pt", "--out", tmp_path / "a")
    assert code == 2 and "'model' (18 tensors)" in err and "'ema' (18 tensors)" in err and "--key" in err
    assert not (tmp_path / "a").exists()
    code, out, err = cli("convert", src, "--to", "pt", "--out", tmp_path / "b", "--key", "ema", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["checkpoint"]["key"] == "ema" and "model (18 tensors)" in report["checkpoint"]["ignored"]
    back = open_source(tmp_path / "b")
    assert np.array_equal(back.load("conv.weight"), ema["conv.weight"].numpy())
    # a dotted path into nested containers, and a key that is not there
    nested = _save(tmp_path / "nested.pt", {"model": {"ema": state, "raw": ema}})
    assert convert(nested, tmp_path / "c", to=["pt"], key="model.ema").checkpoint["key"] == "model.ema"
    with pytest.raises(InputError, match="no entry 'emma'.*'ema'"):
        convert(nested, tmp_path / "d", to=["pt"], key="model.emma")
    with pytest.raises(InputError, match="--key.*only PyTorch pickles"):
        convert(checkpoint_dir("cnn"), tmp_path / "e", to=["pt"], key="model")


def test_drop_leaves_tensors_out_and_warns_on_unused_patterns(tmp_path, state, cli):
    src = _save(tmp_path / "aux.pt", {"model": {**state, "aux_head.weight": state["head.weight"].clone(), "temperature": state["head.bias"][0].clone()}})
    code, out, err = cli("convert", src, "--to", "pt", "--out", tmp_path / "out", "--drop", r"^aux_head\.", "--drop", "^temperature$",
                         "--drop", "no_such_tensor", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["dropped"] == ["aux_head.weight", "temperature"]
    assert report["warnings"] == ["--drop 'no_such_tensor' matched no tensor"]
    assert_same_checkpoint(checkpoint_dir("cnn") / "model.safetensors", tmp_path / "out" / "model.safetensors")
    code, _, err = cli("convert", src, "--to", "pt", "--out", tmp_path / "out2", "--drop", "(")
    assert code == 2 and "--drop" in err and "regular expression" in err
    code, out, err = cli("convert", src, "--to", "tf", "--explain", "--drop", "^aux", "--drop", "^temp")
    assert code == 0 and "dropped (2): aux_head.weight, temperature" in err and "aux_head" not in out


def test_nothing_in_a_checkpoint_runs(tmp_path, monkeypatch, cli):
    """A training checkpoint whose hyper-parameters are a pickled object is refused, not executed."""
    import pickle

    class Hook:
        def __reduce__(self):
            return (os.system, ("touch RAN",))

    monkeypatch.chdir(tmp_path)
    src = tmp_path / "evil.ckpt"
    src.write_bytes(pickle.dumps({"state_dict": {}, "hyper_parameters": Hook()}))
    code, _, err = cli("convert", src, "--to", "pt", "--out", tmp_path / "out")
    assert code == 2 and "refused to unpickle" in err
    assert not (tmp_path / "RAN").exists()


def test_find_state_dict_rules_without_torch():
    t = np.zeros(2)
    is_t = lambda v: isinstance(v, np.ndarray)  # noqa: E731
    # per-parameter optimizer state (int keys) and training-state entries are never candidates
    ckpt = {"net": {"a.w": t}, "optimizer": {"state": {0: {"exp_avg": t}}}, "scaler": {"scale": t}, "rng_state": {"x": t}}
    sd, found = find_state_dict(ckpt, is_tensor=is_t)
    assert list(sd) == ["a.w"] and found.key == "net"
    # tensors at the top level next to scalars: the tensors are the state dict, the rest reported
    sd, found = find_state_dict({"w": t, "epoch": 3}, is_tensor=is_t)
    assert list(sd) == ["w"] and found.ignored == ["epoch (int)"] and found.key is None
    with pytest.raises(InputError, match="no entry holds one"):
        find_state_dict({"epoch": 3, "args": {"lr": 1}}, is_tensor=is_t)
    with pytest.raises(InputError, match="not a state dict.*list"):
        find_state_dict([t], is_tensor=is_t)
    # a wrapper prefix is stripped only when every name has it
    sd, found = find_state_dict({"module.a": t, "b": t}, is_tensor=is_t)
    assert sorted(sd) == ["b", "module.a"]
    assert found.stripped == []
