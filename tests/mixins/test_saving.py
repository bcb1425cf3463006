"""What ``save_pretrained`` and ``push_to_hub`` write: the card names only the frameworks written, and a
folder re-saved with fewer frameworks keeps no stale variant for ``from_pretrained`` to load."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from . import twins

SENTENCE = "one repository with its weights for "


def _sentence(text: str) -> str:
    line = next(line for line in text.splitlines() if SENTENCE in line)
    return line.split(SENTENCE, 1)[1].split(", loaded with")[0]


def test_card_names_only_the_frameworks_saved(tmp_path) -> None:
    model = twins.torch_model()
    model.save_pretrained(tmp_path / "two", frameworks=["pt", "flax"])
    assert _sentence((tmp_path / "two" / "README.md").read_text()) == "PyTorch and JAX/Flax"
    model.save_pretrained(tmp_path / "all")
    assert _sentence((tmp_path / "all" / "README.md").read_text()) == "PyTorch, TensorFlow/Keras and JAX/Flax"


def test_pushed_card_names_the_pushed_frameworks(hub) -> None:
    model, repo = twins.torch_model(), hub.repo("card-fw")
    model.push_to_hub(repo, token=hub.token, frameworks=["pt", "tf"])
    assert _sentence(Path(hub.api().hf_hub_download(repo, "README.md")).read_text()) == "PyTorch and TensorFlow/Keras"


def test_saving_fewer_frameworks_removes_the_stale_variants(tmp_path) -> None:
    old, new = twins.torch_model(seed=0), twins.torch_model(seed=7)
    old.save_pretrained(tmp_path)  # all three variants of the old weights
    (tmp_path / "notes.txt").write_text("mine")
    new.save_pretrained(tmp_path, frameworks=["pt"])
    names = {p.name for p in tmp_path.iterdir()}
    assert "tf_model.h5" not in names and "flax_model.msgpack" not in names
    assert {"model.safetensors", "config.json", "README.md", "notes.txt"} <= names
    # the Keras twin cannot load the old weights: it converts the new PyTorch ones on the fly
    loaded = twins.keras_classes().from_pretrained(tmp_path)
    x = twins.tokens()
    assert np.abs(twins.run(loaded, x) - twins.run(new, x)).max() <= 5e-5


def test_flax_file_that_does_not_fit_the_module_names_the_keys(tmp_path) -> None:
    from flax import serialization

    from tensorferry.converters.errors import InputError

    FNet = twins.flax_classes()
    twins.flax_model().save_pretrained(tmp_path, frameworks=["flax"])
    path = tmp_path / "flax_model.msgpack"
    params = serialization.msgpack_restore(path.read_bytes())
    params.pop("Dense_0")
    params["Extra_0"] = {"kernel": np.zeros((2, 2), np.float32)}
    path.write_bytes(serialization.msgpack_serialize(params))
    with pytest.raises(InputError, match=r"flax_model.msgpack: .*missing params/Dense_0/bias, params/Dense_0/kernel; "
                                         r"unexpected params/Extra_0/kernel"):
        FNet._load_weights(FNet._build(), tmp_path)


def test_push_to_hub_returns_none_when_the_repo_already_holds_the_files(hub) -> None:
    model, repo = twins.torch_model(), hub.repo("noop")
    first = model.push_to_hub(repo, token=hub.token, frameworks=["pt"])
    again = model.push_to_hub(repo, token=hub.token, frameworks=["pt"])
    assert isinstance(first, str) and again is None and len(hub.commits(repo)) == 2
