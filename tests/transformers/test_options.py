"""Config-complete maps and the exact way back to PyTorch, against transformers 4.57.6 itself.

* Option cases switch on modules the generator's tiny config leaves out (ELECTRA-small's narrow
  embeddings, DeBERTa's token types): converted PT → TF/Flax they load like transformers' own
  ``from_pt`` files; transformers' TF/Flax files come back to PyTorch with every key.
* Computed cases hold PyTorch tensors the TF/Flax file lacks (sinusoidal tables, Swin's
  relative_position_index, BatchNorm counters): the PyTorch file tensorferry writes loads with
  ``strict=True`` and gives the source model's outputs.

Runs in the project environment; transformers runs in the second environment (see conftest.py).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import run_helper

from tensorferry.converters.errors import LayoutError
from tensorferry.converters.maps import transformers as maps

TOLERANCE = 5e-5
# (id, model_type, PT class, TF class, Flax class, config changes)
OPTION_CASES = [
    ("electra-small-mlm", "electra", "ElectraForMaskedLM", "TFElectraForMaskedLM", "FlaxElectraForMaskedLM",
     {"embedding_size": 16}),
    ("deberta-tt", "deberta", "DebertaModel", "TFDebertaModel", None, {"type_vocab_size": 2}),
    ("deberta-v2-tt-sc", "deberta-v2", "DebertaV2ForSequenceClassification", "TFDebertaV2ForSequenceClassification",
     None, {"type_vocab_size": 2}),
]
COMPUTED_CASES = [
    ("marian-mt", "marian", "MarianMTModel", "TFMarianMTModel", "FlaxMarianMTModel", {}),
    ("pegasus-cg", "pegasus", "PegasusForConditionalGeneration", "TFPegasusForConditionalGeneration",
     "FlaxPegasusForConditionalGeneration", {}),
    ("roformer", "roformer", "RoFormerModel", "TFRoFormerModel", "FlaxRoFormerModel", {}),
    ("resnet", "resnet", "ResNetModel", "TFResNetModel", "FlaxResNetModel", {}),
    ("swin", "swin", "SwinModel", "TFSwinModel", None, {}),
]
CASES = [dict(zip(("id", "model_type", "pt", "tf", "flax", "changes"), c)) for c in OPTION_CASES + COMPUTED_CASES]
BY_ID = {c["id"]: c for c in CASES}
OPTION_IDS = [c[0] for c in OPTION_CASES]
BACK = [(c["id"], fw) for c in CASES for fw in ("tf", "flax") if c[fw]]


@pytest.fixture(scope="module")
def models(tx_python: Path, tmp_path_factory) -> Path:
    """Tiny PT models of every case with transformers' own from_pt TF/Flax files."""
    root = tmp_path_factory.mktemp("tx-options")
    made = run_helper(tx_python, "make", {"root": str(root), "cases": CASES}, root)
    assert set(made) == set(BY_ID)
    return root


@pytest.fixture(scope="module")
def converted(models: Path, tmp_path_factory) -> dict:
    """tensorferry in every direction: PT → TF+Flax, transformers' TF → PT and Flax → PT (project environment)."""
    from tensorferry.converters import convert

    out = tmp_path_factory.mktemp("tf-options")
    results: dict = {"from_pt": out / "from_pt", "back": {}}
    for case in CASES:
        to = [fw for fw in ("tf", "flax") if case[fw]]
        convert(models / case["id"] / "pt", out / "from_pt" / case["id"], to=to)
        for fw in to:
            dst = out / f"from_{fw}" / case["id"]
            results["back"][(case["id"], fw)] = (dst, convert(models / case["id"] / f"tx_{fw}", dst, to=["pt"]))
    return results


@pytest.fixture(scope="module")
def loaded(tx_python: Path, models: Path, converted: dict, tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("tx-options-check")
    cases = [c for c in CASES if c["id"] in OPTION_IDS]
    return run_helper(tx_python, "check", {"root": str(models), "converted": str(converted["from_pt"]), "cases": cases}, tmp)


@pytest.fixture(scope="module")
def strict(tx_python: Path, models: Path, converted: dict, tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("tx-options-strict")
    dirs: dict = {}
    for (case, fw), (dst, _) in converted["back"].items():
        dirs.setdefault(case, {})[fw] = str(dst)
    return run_helper(tx_python, "strict", {"root": str(models), "cases": CASES, "converted": dirs}, tmp)


# -- the maps themselves (no transformers) ---------------------------------------------------

def test_optional_tensors_are_in_every_architecture_with_their_config_field() -> None:
    doc = json.loads((maps.MAPS_DIR / "electra.json").read_text())
    assert doc["variants"], "the ELECTRA map was recorded from no option variant"
    for arch, a in doc["architectures"].items():
        entries = [e for e in a["tensors"] if e["pt"].endswith("embeddings_project.weight")]
        assert len(entries) == 1, arch
        assert {"embedding_size": 16} in entries[0]["enabled_by"], arch
    for mt in ("deberta", "deberta-v2"):
        doc = json.loads((maps.MAPS_DIR / f"{mt}.json").read_text())
        for arch, a in doc["architectures"].items():
            tt = [e for e in a["tensors"] if e["pt"].endswith("embeddings.token_type_embeddings.weight")]
            assert tt and tt[0]["tf"] and {"type_vocab_size": 2} in tt[0]["enabled_by"], (mt, arch)


def test_explain_names_the_config_field() -> None:
    m = maps.find_map({"model_type": "electra", "architectures": ["ElectraForPreTraining"]})
    assert m.note("electra.embeddings_project.weight") == "present when embedding_size=16"
    assert m.note("electra.embeddings.word_embeddings.weight") is None


def test_unknown_tensor_error_names_the_options_tried() -> None:
    m = maps.find_map({"model_type": "electra", "architectures": ["ElectraModel"]})
    with pytest.raises(LayoutError, match="embedding_size=16"):
        m.from_canonical("tf", {"no.such.module.weight": ((4, 4), "F32")})


def test_option_a_framework_cannot_hold_is_refused_by_name() -> None:
    # transformers' TF/Flax ELECTRA ignore position_embedding_type=relative_key: a file without the
    # distance embedding would compute something else, so the conversion refuses it.
    m = maps.find_map({"model_type": "electra", "architectures": ["ElectraModel"]})
    key = "encoder.layer.0.attention.self.distance_embedding.weight"
    with pytest.raises(LayoutError, match="position_embedding_type=relative_key"):
        m.from_canonical("flax", {key: ((127, 32), "F32")})


def test_computed_specs_are_data() -> None:
    specs = {}
    for mt, key in (("marian", "encoder.embed_positions.weight"), ("pegasus", "encoder.embed_positions.weight"),
                    ("roformer", "encoder.embed_positions.weight"),
                    ("swin", "encoder.layers.{0}.blocks.{1}.attention.self.relative_position_index")):
        doc = json.loads((maps.MAPS_DIR / f"{mt}.json").read_text())
        base = doc["architectures"][doc["base_architecture"]]
        specs[mt] = next(e for e in base["tensors"] if e["pt"] == key)["computed"]
    assert specs["marian"] == {"fn": "sinusoidal", "params": {"rows": "max_position_embeddings", "dim": "d_model"}}
    assert specs["roformer"]["params"]["dim"] == "hidden_size//num_attention_heads"
    assert specs["swin"] == {"fn": "relative_position_index", "params": {"window": "window_size"}}


# -- against transformers ---------------------------------------------------------------------

@pytest.mark.parametrize("case", OPTION_IDS)
def test_option_variants_load_like_from_pt(loaded: dict, case: str) -> None:
    for fw, r in loaded[case].items():
        if fw == "tf":
            assert r["missing"] == [] and r["unexpected"] == [] and r["mismatched"] == [], r
        else:
            assert r["warnings"] == [] and r["tree_keys_equal"] and r["loaded_equal"], r
        assert r["weights"] > 0 and r["differ"] == [], (fw, r["differ"][:5])
        assert r["max_delta"] <= TOLERANCE, (fw, r["max_delta"])


@pytest.mark.parametrize(("case", "framework"), BACK)
def test_back_to_pytorch_loads_strictly_with_the_source_outputs(strict: dict, converted: dict, case: str,
                                                                 framework: str) -> None:
    r = strict[case][framework]
    # Every key of the source file; more only where transformers' save leaves out what the model has
    # (Marian's `_keys_to_ignore_on_save` sinusoidal tables): the strict load below says they belong.
    assert r["missing_vs_source"] == [], r["missing_vs_source"]
    assert r["strict"] == "ok", r["strict"]
    assert r["max_delta"] <= TOLERANCE, r["max_delta"]
    _, result = converted["back"][(case, framework)]
    assert result.unrecovered == [] and result.to_json()["unrecovered"] == []


@pytest.mark.parametrize("case", ["electra-small-mlm"])
def test_tf_to_flax_with_the_option(models: Path, tmp_path: Path, case: str) -> None:
    from flax.serialization import msgpack_restore
    from flax.traverse_util import flatten_dict

    from tensorferry.converters import convert

    convert(models / case / "tx_tf", tmp_path, to=["flax"])
    mine, theirs = (flatten_dict(msgpack_restore((folder / "flax_model.msgpack").read_bytes()), sep="/")
                    for folder in (tmp_path, models / case / "tx_flax"))
    assert sorted(mine) == sorted(theirs) and any("embeddings_project" in k for k in mine)
    assert all(np.array_equal(mine[k], theirs[k]) for k in theirs)


def test_unrecoverable_tensors_are_listed_by_name(models: Path, tmp_path: Path) -> None:
    """A config switching on what the Flax class ignores: the PyTorch file cannot get it, and says so."""
    from tensorferry.converters import convert
    from tensorferry.converters.verify.run import verify_dir

    src = tmp_path / "flax"
    shutil.copytree(models / "electra-small-mlm" / "tx_flax", src)
    config = json.loads((src / "config.json").read_text())
    config["position_embedding_type"] = "relative_key"
    (src / "config.json").write_text(json.dumps(config))
    result = convert(src, tmp_path / "pt", to=["pt"])
    want = [f"electra.encoder.layer.{i}.attention.self.distance_embedding.weight" for i in (0, 1)]
    assert result.unrecovered == want and result.to_json()["unrecovered"] == want
    v = verify_dir(tmp_path / "pt", reference=src, frameworks=["pt"], functional=False, report_dir=False)
    assert v.unrecovered == want and v.to_json()["unrecovered"] == want
    assert "distance_embedding" in v.summary()
