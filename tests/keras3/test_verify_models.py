"""``convert --verify`` with Keras 3 / NNX models: each variant loaded by its own framework into the model
and compared bit for bit with the planned tensors; a changed file fails, naming the variable."""
from __future__ import annotations

import os
import shutil

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import h5py
import json

from tensorferry.converters import convert
from tensorferry.converters.checkpoint import open_source
from tensorferry.converters.verify.guided import verify_guided
from tensorferry.fixtures import autonamed as twins
from tensorferry.fixtures import keras3_twins as k3
from tensorferry.fixtures import nnx_twins as nt


def test_cli_verifies_keras3_and_nnx_variants_in_their_frameworks(tmp_path, cli):
    import torch

    torch.save(twins.torch_cnn().state_dict(), tmp_path / "model.pt")
    code, out, err = cli("convert", tmp_path / "model.pt", "--out", tmp_path / "out", "--to", "pt,tf,flax", "--verify", "--json",
                         "--model", "tf=tensorferry.fixtures.keras3_twins:cnn", "--model", "flax=tensorferry.fixtures.nnx_twins:cnn")
    assert code == 0, err
    report = json.loads(out)
    assert report["verification_models"]["tf"]["passed"] and report["verification_models"]["flax"]["passed"]
    assert report["verification_models"]["tf"]["summary"] == "16/16 bit-exact"
    assert report["verification"]["passed"]  # the plain PyTorch variant, verified as before
    for fw, where in (("tf", "model.weights.h5"), ("flax", "nnx")):  # the variants open as sources by framework
        assert open_source(tmp_path / "out", fw).files[0].name == where


def test_cli_refuses_verify_for_keras2_models(tmp_path, cli):
    import torch

    torch.save(twins.torch_cnn().state_dict(), tmp_path / "model.pt")
    code, _, err = cli("convert", tmp_path / "model.pt", "--out", tmp_path / "out", "--to", "tf", "--verify",
                       "--model", "tf=tensorferry.fixtures.autonamed:keras_cnn")
    assert code != 0 and "only for Keras 3 models and NNX modules" in err and not (tmp_path / "out").exists()


def test_a_changed_variant_fails_naming_the_variable(tmp_path):
    import torch

    torch.save(twins.torch_rnn().state_dict(), tmp_path / "model.pt")
    source = open_source(tmp_path / "model.pt")
    result = convert(source, tmp_path / "out", to=["tf"], models={"tf": k3.rnn()})
    with h5py.File(tmp_path / "out" / "model.weights.h5", "r+") as f:
        f["layers/gru/cell/vars/1"][0, 0] += 1.0  # one recurrent-kernel value
    check = verify_guided(tmp_path / "out", source, result.plan)["tf"]
    assert not check.passed and [t.name for t in check.failures] == ["layers/gru/cell/vars/1"]
    assert abs(check.failures[0].max_abs - 1.0) < 1e-6


def test_an_nnx_checkpoint_of_other_weights_fails(tmp_path):
    import torch

    torch.save(nt.torch_lstm().state_dict(), tmp_path / "a.pt")
    other = nt.torch_lstm()
    with torch.no_grad():
        other.proj.bias.add_(0.5)
    torch.save(other.state_dict(), tmp_path / "b.pt")
    source = open_source(tmp_path / "a.pt")
    result = convert(source, tmp_path / "a", to=["flax"], models={"flax": nt.lstm()})
    convert(tmp_path / "b.pt", tmp_path / "b", to=["flax"], models={"flax": nt.lstm()})
    assert verify_guided(tmp_path / "a", source, result.plan)["flax"].passed
    shutil.rmtree(tmp_path / "a" / "nnx")
    shutil.copytree(tmp_path / "b" / "nnx", tmp_path / "a" / "nnx")
    check = verify_guided(tmp_path / "a", source, result.plan)["flax"]
    assert [t.name for t in check.failures] == ["params/proj/bias"]
    assert any(t.detail == "kept from the template" and t.passed for t in check.tensors)  # RNG state compared too


def test_verify_command_checks_keras3_and_nnx_variants_with_their_models(tmp_path, cli):
    import torch

    torch.save(twins.torch_cnn().state_dict(), tmp_path / "model.pt")
    convert(tmp_path / "model.pt", tmp_path / "out", to=["pt", "tf", "flax"], models={"tf": k3.cnn(), "flax": nt.cnn()})
    models = ["--model", "tf=tensorferry.fixtures.keras3_twins:cnn", "--model", "flax=tensorferry.fixtures.nnx_twins:cnn"]
    code, out, err = cli("verify", tmp_path / "out", "--reference", tmp_path / "model.pt", "--weights-only", "--json", *models)
    assert code == 0, err
    report = json.loads(out)
    assert report["passed"]
    with h5py.File(tmp_path / "out" / "model.weights.h5", "r+") as f:
        f["layers/dense/vars/1"][0] += 0.5
    code, out, _ = cli("verify", tmp_path / "out", "--reference", tmp_path / "model.pt", "--weights-only", "--json", *models)
    assert code == 3 and not json.loads(out)["passed"] and "layers/dense/vars/1" in out
