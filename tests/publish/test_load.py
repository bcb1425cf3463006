"""`tensorferry.publish.load` / `tensorferry pull`: one framework's weights from a repo, converted when missing."""
from __future__ import annotations

import numpy as np
import pytest

from tensorferry.converters import open_source
from tensorferry.fixtures import checkpoint_dir
from tensorferry.publish import load, publish
from tensorferry.publish.cli import main


@pytest.fixture(scope="module")
def repos(hub):
    """(a repo with all three variants, a repo with PyTorch weights only)."""
    full, pt_only = hub.repo("load-full"), hub.repo("load-pt")
    publish(checkpoint_dir("cnn"), full, endpoint=hub.url, token=hub.token, verify="weights", quiet=True)
    publish(checkpoint_dir("cnn"), pt_only, endpoint=hub.url, token=hub.token, to="pt", quiet=True)
    return full, pt_only


def _reference() -> dict[str, np.ndarray]:
    src = open_source(checkpoint_dir("cnn"))
    return {n: np.asarray(src.load(n)) for n in src.infos}


@pytest.mark.parametrize("which", ["with the variant", "converted on the fly"])
def test_each_framework_in_its_own_structure(hub, repos, tmp_path, which) -> None:
    import torch

    repo = repos[0] if which == "with the variant" else repos[1]
    ref = _reference()
    options = dict(endpoint=hub.url, token=hub.token, cache_dir=str(tmp_path / "cache"))
    pt = load(repo, "pt", **options)
    assert set(pt) == set(ref) and all(isinstance(t, torch.Tensor) for t in pt.values())
    assert all(np.array_equal(pt[n].numpy(), ref[n]) for n in ref)
    tf = load(repo, "tensorflow", **options)
    assert np.array_equal(tf["tf_tiny_cnn/conv/kernel"], ref["conv.weight"].transpose(2, 3, 1, 0))
    flax = load(repo, "jax", **options)
    assert np.array_equal(flax["params"]["conv"]["kernel"], ref["conv.weight"].transpose(2, 3, 1, 0))
    assert np.array_equal(flax["batch_stats"]["bn1"]["mean"], ref["bn1.running_mean"])
    # only what was needed came down: the full repo's TF download holds no Flax file
    downloaded = {p.name for p in (tmp_path / "cache").rglob("*") if p.is_file() or p.is_symlink()}
    if which == "with the variant":
        assert "tf_model.h5" in downloaded and "flax_model.msgpack" in downloaded
    else:
        assert not {"tf_model.h5", "flax_model.msgpack"} & downloaded  # converted locally from model.safetensors


def test_pull_writes_the_variant_and_its_config(hub, repos, tmp_path, capsys) -> None:
    full, pt_only = repos
    for repo in (full, pt_only):
        out = tmp_path / repo.split("/")[1]
        assert main(["pull", repo, "--framework", "flax", "--out", str(out), "--endpoint", hub.url, "--token", hub.token]) == 0
        assert sorted(p.name for p in out.iterdir()) == ["config.json", "flax_model.msgpack"]
        assert open_source(out).framework == "flax"
    assert main(["pull", "alice/no-such-repo", "--framework", "tf", "--out", str(tmp_path / "x"), "--endpoint", hub.url,
                 "--token", hub.token]) == 2
    assert "not found" in capsys.readouterr().err


def test_a_failed_conversion_on_the_fly_leaves_no_temp_folder(tmp_path, monkeypatch) -> None:
    import tempfile

    from tensorferry.converters.errors import InputError
    from tensorferry.publish import load

    src = tmp_path / "src"
    src.mkdir()
    (src / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{broken}")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    with pytest.raises(InputError, match="model.safetensors"):
        load(src, "flax")
    assert list(scratch.iterdir()) == []
