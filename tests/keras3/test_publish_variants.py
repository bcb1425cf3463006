"""publish with Keras 3 and NNX variants, to the real local Hub with the unmodified client: the root keeps
the standard files, ``keras3/model.weights.h5`` and ``nnx/`` (Orbax) come in the same one commit, the card
tags and shows how to load them, and the downloaded variants load in their frameworks with the PyTorch
outputs; a variant for a model of the wrong kind pushes nothing."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

from tensorferry.converters import InputError
from tensorferry.fixtures import autonamed as twins
from tensorferry.fixtures import keras3_twins as k3
from tensorferry.fixtures import nnx_twins as nt
from tensorferry.publish import publish
from tensorferry.publish.hub import LocalHub, create_token
from tensorferry.publish.hub_io import hub_api

TOLERANCE = 5e-5
VARIANTS = ["keras3=tensorferry.fixtures.keras3_twins:cnn", "nnx=tensorferry.fixtures.nnx_twins:cnn"]


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    data = tmp_path_factory.mktemp("variants-hub")
    with LocalHub(data) as server:
        yield server.url, create_token(data, "alice")


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    from safetensors.torch import save_file

    d = tmp_path_factory.mktemp("cnn-src")
    model = twins.torch_cnn()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, d / "model.safetensors")
    return d, model


def test_variants_land_in_subfolders_in_one_commit_and_load(hub, source, tmp_path):
    from huggingface_hub import snapshot_download

    url, token = hub
    src, model = source
    result = publish(src, "alice/cnn-variants", to=["pt"], endpoint=url, token=token, quiet=True, variants=VARIANTS,
                     verify="weights")
    api = hub_api(url, token)
    assert len(api.list_repo_commits("alice/cnn-variants")) == 2  # the repo's first commit, and ours
    names = set(api.list_repo_files("alice/cnn-variants"))
    assert {"model.safetensors", "keras3/model.weights.h5", "nnx/_METADATA", "README.md"} <= names
    assert not any(n.startswith(".variants") or n.startswith("keras3/config") for n in names)
    assert {f.path for f in result.files} == names - {".gitattributes"}
    local = snapshot_download("alice/cnn-variants", endpoint=url, token=token, cache_dir=tmp_path / "cache")
    inputs = twins.inputs_cnn()
    expected = twins.run("pt", model, inputs)
    keras_model = k3.cnn()
    keras_model.load_weights(os.path.join(local, "keras3", "model.weights.h5"))
    assert float(np.abs(k3.run(keras_model, inputs) - expected).max()) <= TOLERANCE
    import orbax.checkpoint as ocp
    from flax import nnx

    nnx_model = nt.cnn()
    nnx.update(nnx_model, ocp.StandardCheckpointer().restore(os.path.join(local, "nnx"), nnx.state(nnx_model)))
    assert float(np.abs(nt.run(nnx_model, inputs) - expected).max()) <= TOLERANCE
    card = open(os.path.join(local, "README.md")).read()
    assert "keras" in card.split("---")[1] and "orbax" in card.split("---")[1]  # tags in the metadata
    assert 'model.load_weights(hf_hub_download("alice/cnn-variants", "keras3/model.weights.h5"))' in card
    assert "from tensorferry.fixtures.nnx_twins import cnn" in card and "16/16 bit-exact" in card


def test_a_variant_for_the_wrong_kind_of_model_pushes_nothing(hub, source):
    url, token = hub
    with pytest.raises(InputError, match="not a Keras 3 model"):
        publish(source[0], "alice/cnn-wrong", to=["pt"], endpoint=url, token=token, quiet=True, verify="weights",
                variants=["keras3=tensorferry.fixtures.autonamed:keras_cnn"])
    assert not hub_api(url, token).repo_exists("alice/cnn-wrong")


def test_the_cli_publishes_a_variant_too(hub, source, capsys):
    import json

    from tensorferry.publish.cli import main

    url, token = hub
    src, _ = source
    code = main(["publish", str(src), "alice/cnn-variant-cli", "--to", "pt", "--variant", VARIANTS[0], "--endpoint", url,
                 "--token", token, "--verify", "weights", "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    paths = {f["path"] for f in json.loads(out.out)["files"]}
    assert {"model.safetensors", "keras3/model.weights.h5", "README.md"} <= paths
    assert "nnx/_METADATA" not in paths and token not in out.out + out.err
