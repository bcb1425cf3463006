"""Knowing what each tensor is: layout map, caller's structure, layout, heuristics, --strict, --explain."""
from __future__ import annotations

import json
import shutil

import h5py
import pytest
from conftest import checkpoint_dir

from tensorferry.converters import LayoutError, convert, open_source, plan_for
from tensorferry.converters.kinds import kinds_from_torch


@pytest.fixture
def unmapped_cnn(tmp_path):
    """The CNN checkpoint without config.json: no layout map can apply."""
    src = tmp_path / "cnn.safetensors"
    shutil.copy(checkpoint_dir("cnn") / "model.safetensors", src)
    return src


def test_map_decides_every_ambiguous_module():
    plan = plan_for(open_source(checkpoint_dir("cnn")), ["tf", "flax"])
    assert {m: (d.kind, d.how) for m, d in plan.decisions.items() if d.how == "map"} == {
        "conv": ("conv", "map"), "dw": ("depthwise", "map"), "up": ("conv_transpose", "map")}
    assert plan.decisions["dw"].param("multiplier") == 2
    assert plan.heuristics() == {}


def test_without_a_map_heuristics_decide_and_are_reported(unmapped_cnn, tmp_path):
    result = convert(unmapped_cnn, tmp_path / "out", to=["tf", "flax"])
    assert set(result.heuristics) == {"conv", "dw", "up"}
    assert result.heuristics["dw"].startswith("depthwise") and result.heuristics["up"].startswith("conv_transpose")


def test_heuristics_are_errors_under_strict(unmapped_cnn, tmp_path, cli):
    with pytest.raises(LayoutError) as err:
        convert(unmapped_cnn, tmp_path / "out", to=["tf"], strict=True)
    assert "--strict" in str(err.value) and "weight" in str(err.value)
    code, _, stderr = cli("convert", unmapped_cnn, "--to", "tf", "--out", tmp_path / "out2", "--strict")
    assert code == 2 and "--strict" in stderr
    assert not (tmp_path / "out2").exists()


def test_same_layout_needs_no_decision(unmapped_cnn):
    """A conv and a transposed conv share the TF layout: PT → TF alone needs no guess about them."""
    plan = plan_for(open_source(unmapped_cnn), ["tf"])
    assert plan.decisions["up"].how == "layout" and plan.decisions["conv"].how == "layout"
    assert plan.heuristics() == {"dw": plan.decisions["dw"]}  # depthwise vs conv still differs in TF


def test_structure_from_a_torch_model_decides_like_the_map(unmapped_cnn, tmp_path):
    from tensorferry.fixtures import cnn

    structure = kinds_from_torch(cnn.torch_model(cnn.CONFIG))
    assert structure["dw"] == "depthwise:2"
    result = convert(unmapped_cnn, tmp_path / "s", to=["tf", "flax"], structure=cnn.torch_model(cnn.CONFIG), strict=True)
    assert result.heuristics == {}
    convert(checkpoint_dir("cnn"), tmp_path / "m", to=["tf", "flax"])
    for name in ("tf_model.h5", "flax_model.msgpack"):
        assert (tmp_path / "s" / name).read_bytes() != b""
    with h5py.File(tmp_path / "s" / "tf_model.h5") as a, h5py.File(tmp_path / "m" / "tf_model.h5") as b:
        # without config.json the Keras model name falls back to "model"
        assert a["dw"]["model/dw/depthwise_kernel:0"].shape == (3, 3, 8, 2)
        assert (a["dw"]["model/dw/depthwise_kernel:0"][...] == b["dw"]["tf_tiny_cnn/dw/depthwise_kernel:0"][...]).all()


def test_kind_flag_and_a_map_that_contradicts_the_tensors(unmapped_cnn, tmp_path, cli):
    code, _, _ = cli("convert", unmapped_cnn, "--to", "tf", "--out", tmp_path / "a", "--strict",
                     "--kind", "dw=depthwise:2", "--kind", "conv|up=conv")
    assert code == 0
    bad = tmp_path / "map.json"
    bad.write_text(json.dumps({"kinds": {"head": "embedding"}}))
    code, _, err = cli("convert", unmapped_cnn, "--to", "tf", "--out", tmp_path / "b", "--layout-map", bad)
    assert code == 2 and "head" in err and "embedding" in err


def test_undecidable_tensor_is_an_error_naming_it(tmp_path):
    """A 4-D conv weight with one input channel per group and a meaningless name: conv or depthwise?"""
    import numpy as np
    from safetensors.numpy import save_file

    save_file({"block.weight": np.zeros((8, 1, 3, 3), np.float32)}, tmp_path / "x.safetensors")
    with pytest.raises(LayoutError) as err:
        convert(tmp_path / "x.safetensors", tmp_path / "out", to=["tf"])
    assert "block.weight" in str(err.value) and "depthwise" in str(err.value) and "--kind" in str(err.value)


def test_explain_prints_route_names_and_transforms(cli):
    code, out, _ = cli("convert", checkpoint_dir("recurrent"), "--to", "tf,flax", "--explain")
    assert code == 0
    assert out.splitlines()[0] == "route: pt → canonical (safetensors, PyTorch layout) → tf, flax"
    assert "conv.weight" in out and "tf_tiny_rnn/conv/kernel:0" in out and "perm(2,1,0)" in out
    assert "lstm/hi/bias" in out and "gru/gru_cell/bias:0" in out
    code, out, _ = cli("convert", checkpoint_dir("cnn"), "--to", "flax", "--explain", "--json")
    rows = json.loads(out)
    up = next(r for r in rows["targets"]["flax"] if r["to"] == "params/up/kernel")
    assert up["transform"] == "perm(2,3,0,1)|flip(0,1)" and up["kind"] == "conv_transpose" and up["decided_by"] == "map"
