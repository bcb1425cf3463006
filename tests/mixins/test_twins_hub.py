"""A model pushed once with its framework's mixin loads in all three frameworks (twins with auto-named
layers, paired by structure), against the local Hub; config, card metadata and sharding."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tensorferry.publish.card import BEGIN

from . import twins

TOLERANCE = 5e-5
VARIANTS = {"pt": "model.safetensors", "tf": "tf_model.h5", "flax": "flax_model.msgpack"}
MAKERS = {"pt": twins.torch_model, "tf": twins.keras_model, "flax": twins.flax_model}
CLASSES = {"pt": twins.torch_classes, "tf": twins.keras_classes, "flax": twins.flax_classes}


@pytest.fixture(scope="module")
def pushed(hub):
    """One repo per source framework, each pushed once: {framework: (repo, url, reference outputs)}."""
    ids = twins.tokens()
    out = {}
    with pytest.MonkeyPatch.context() as mp:  # a module fixture runs before the per-test HF_ENDPOINT
        mp.setenv("HF_ENDPOINT", hub.url)
        for fw, make in MAKERS.items():
            model, repo = make(), hub.repo(f"twins-{fw}")
            url = model.push_to_hub(repo, token=hub.token)
            out[fw] = (repo, url, twins.run(model, ids))
    return out


@pytest.mark.parametrize("source", ["pt", "tf", "flax"])
def test_one_push_is_one_commit_with_every_variant(hub, pushed, source) -> None:
    repo, url, _ = pushed[source]
    history = hub.commits(repo)
    assert len(history) == 2 and history[0].commit_id in url  # the repo's initial commit, then ours
    files = set(hub.api().list_repo_files(repo))
    assert set(VARIANTS.values()) | {"config.json", "README.md", "verification.json"} <= files


@pytest.mark.parametrize("target", ["pt", "tf", "flax"])
@pytest.mark.parametrize("source", ["pt", "tf", "flax"])
def test_pushed_once_loads_in_every_framework_with_the_same_outputs(hub, pushed, source, target, tmp_path) -> None:
    repo, _, reference = pushed[source]
    model = CLASSES[target]().from_pretrained(repo, token=hub.token, cache_dir=tmp_path)
    got = twins.run(model, twins.tokens())
    assert got.shape == reference.shape
    assert np.abs(got - reference).max() <= TOLERANCE
    # only config.json and this framework's own variant were downloaded
    snapshot = next((tmp_path).glob("models--*/snapshots/*"))
    assert sorted(p.name for p in snapshot.iterdir()) == sorted(["config.json", VARIANTS[target]])
    if target == "pt":
        assert not model.training  # eval mode
    if target == "flax":
        assert set(model.variables) == {"params"}


def test_card_carries_the_class_keywords_and_tensorferrys_section(hub, pushed) -> None:
    from huggingface_hub import ModelCard

    repo, _, _ = pushed["pt"]
    card = ModelCard(Path(hub.api().hf_hub_download(repo, "README.md")).read_text())
    assert card.data.library_name == "tiny-lib" and card.data.license == "mit"
    assert {"text", "pytorch_model_hub_mixin", "model_hub_mixin", "tensorferry", "tensorflow", "jax"} <= set(card.data.tags)
    assert "https://example.org/tiny-lib" in card.text and BEGIN in card.text


def test_push_options_branch_and_pull_request(hub, tmp_path) -> None:
    model, repo = twins.torch_model(), hub.repo("options")
    model.push_to_hub(repo, token=hub.token, frameworks=["pt", "flax"], commit_message="first weights")
    url = model.push_to_hub(repo, token=hub.token, branch="dev", frameworks="pt,tf")  # new branch, from main
    api = hub.api()
    assert hub.commits(repo)[0].title == "first weights"
    assert "tf_model.h5" not in api.list_repo_files(repo)
    # the Keras twin finds no tf_model.h5 on main: it downloads the PyTorch variant and converts it on the fly
    keras_model = twins.keras_classes().from_pretrained(repo, token=hub.token, cache_dir=tmp_path)
    assert np.abs(twins.run(keras_model, twins.tokens()) - twins.run(model, twins.tokens())).max() <= TOLERANCE
    snapshot = next(tmp_path.glob("models--*/snapshots/*"))
    assert sorted(p.name for p in snapshot.iterdir()) == ["config.json", "model.safetensors"]
    # and again from the cache alone, with the Hub unreachable
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
        again = twins.keras_classes().from_pretrained(repo, cache_dir=tmp_path, local_files_only=True)
    assert np.array_equal(twins.run(again, twins.tokens()), twins.run(keras_model, twins.tokens()))
    assert "tf_model.h5" in api.list_repo_files(repo, revision="dev") and url
    twins.torch_model(seed=5).push_to_hub(repo, token=hub.token, create_pr=True)
    assert [d.num for d in api.get_repo_discussions(repo, discussion_type="pull_request")] == [1]


def test_config_round_trip_defaults_passed_values_and_overrides(tmp_path) -> None:
    model = twins.torch_model(hidden=10)
    model.save_pretrained(tmp_path / "pt", frameworks=["pt"])
    assert json.loads((tmp_path / "pt" / "config.json").read_text()) == {"vocab": 20, "dim": 8, "hidden": 10, "classes": 5}
    loaded = twins.torch_classes().from_pretrained(tmp_path / "pt")
    assert loaded.conv.out_channels == 10 and np.array_equal(twins.run(loaded, twins.tokens()), twins.run(model, twins.tokens()))

    flax_model = twins.flax_model(hidden=10)  # linen: the dataclass fields are the config
    flax_model.save_pretrained(tmp_path / "flax", frameworks=["flax"])
    assert json.loads((tmp_path / "flax" / "config.json").read_text()) == {"vocab": 20, "dim": 8, "hidden": 10, "classes": 5}
    assert twins.flax_classes().from_pretrained(tmp_path / "flax").hidden == 10

    sized = twins.sized_class()(twins.Sizes(vocab=30, dim=4), scale=0.5)  # a dataclass argument through `coders`
    sized.save_pretrained(tmp_path / "sized", frameworks=["pt", "flax"])
    assert json.loads((tmp_path / "sized" / "config.json").read_text()) == {"sizes": {"vocab": 30, "dim": 4}, "scale": 0.5}
    back = twins.sized_class().from_pretrained(tmp_path / "sized", scale=2.0)  # keyword arguments override the config
    assert back.sizes == twins.Sizes(vocab=30, dim=4) and back.scale == 2.0
    assert np.array_equal(back.embed.weight.detach().numpy(), sized.embed.weight.detach().numpy())


def test_sharded_save_like_transformers_and_loads_back(tmp_path) -> None:
    model = twins.torch_model(vocab=64)
    model.save_pretrained(tmp_path, max_shard_size="1KB")
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 1 and shards[0] == f"model-00001-of-{len(shards):05d}.safetensors"
    assert set(index["weight_map"]) == set(model.state_dict()) and not (tmp_path / "model.safetensors").exists()
    assert (tmp_path / "tf_model.h5.index.json").exists() and (tmp_path / "flax_model.msgpack.index.json").exists()
    ids = twins.tokens(vocab=64)
    reference = twins.run(model, ids)
    for target in ("pt", "tf", "flax"):
        loaded = CLASSES[target]().from_pretrained(tmp_path)
        assert np.abs(twins.run(loaded, ids) - reference).max() <= TOLERANCE, target
