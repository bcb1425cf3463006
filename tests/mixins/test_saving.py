"""What ``save_pretrained`` and ``push_to_hub`` write: the card names only the frameworks written, and a
folder re-saved with fewer frameworks keeps no stale variant for ``from_pretrained`` to load."""
from __future__ import annotations

from pathlib import Path

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
