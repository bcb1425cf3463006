"""The shipped maps and their runtime reader, without transformers (project environment only)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tensorferry.converters.maps import transformers as maps
from tensorferry.converters.errors import LayoutError
from tensorferry.converters.maps.mapgen.match import find_op, generalise, reshape_op
from tensorferry.converters.ops import parse

F32 = "F32"


def _bert(arch: str = "BertModel") -> maps.ArchitectureMap:
    return maps.find_map({"model_type": "bert", "architectures": [arch]})


def test_every_shipped_map_is_well_formed() -> None:
    names = maps.available()
    assert len(names) >= 40, names
    for mt in names:
        doc = json.loads((maps.MAPS_DIR / f"{mt}.json").read_text())
        assert doc["model_type"] == mt and doc["generated_by"] == "transformers 4.57.6"
        for arch, a in doc["architectures"].items():
            assert "tf" in a or "flax" in a, (mt, arch)
            pts = [e["pt"] for e in a["tensors"]]
            assert len(pts) == len(set(pts)), (mt, arch)
            for fw in ("tf", "flax"):
                entries = [x for e in a["tensors"] for x in (e, *e.get(fw + "_copies", [])) if x.get(fw)]
                natives = [x[fw] for x in entries]
                assert len(natives) == len(set(natives)), (mt, arch, fw)
                for x in entries:
                    parse(x[fw + "_op"])  # every op string is valid
                for e in a["tensors"]:
                    assert not e.get(fw + "_copies") or e.get(fw), (mt, arch, e["pt"])  # copies need a primary
            m = maps.ArchitectureMap(doc, arch)
            assert m.frameworks


def test_find_map_picks_architecture_and_falls_back_to_base() -> None:
    assert _bert("BertForMaskedLM").architecture == "BertForMaskedLM"
    assert maps.find_map({"model_type": "bert", "architectures": ["TFBertForMaskedLM"]}).architecture == "BertForMaskedLM"
    assert maps.find_map({"model_type": "bert", "architectures": ["SomethingElse"]}).architecture == "BertModel"
    assert maps.find_map({"architectures": ["BertModel"]}) is None
    assert maps.find_map(None) is None
    assert _bert().tf_model_name == "tf_bert_model"


@pytest.mark.parametrize("key", ["encoder.layer.5.output.dense.weight", "bert.encoder.layer.5.output.dense.weight"])
def test_base_model_keys_with_or_without_prefix(key: str) -> None:
    m = _bert()
    name, op = m.from_canonical("tf", {key: ((37, 32), F32)})[key]
    assert name == "tf_bert_model/bert/encoder/layer_._5/output/dense/kernel" and str(op) == "T"
    name, op = m.from_canonical("flax", {key: ((37, 32), F32)})[key]
    assert name == "encoder/layer/5/output/dense/kernel"


def test_head_model_accepts_base_checkpoint_keys() -> None:
    m = _bert("BertForMaskedLM")
    out = m.from_canonical("flax", {"embeddings.word_embeddings.weight": ((99, 32), F32)})
    assert out["embeddings.word_embeddings.weight"][0] == "bert/embeddings/word_embeddings/embedding"


def test_tied_and_buffers_have_no_counterpart() -> None:
    m = _bert("BertForMaskedLM")
    specs = {"bert.embeddings.word_embeddings.weight": ((99, 32), F32),
             "cls.predictions.decoder.weight": ((99, 32), F32),
             "bert.embeddings.position_ids": ((1, 64), "I64")}
    out = m.from_canonical("tf", specs)
    assert out["cls.predictions.decoder.weight"] is None and out["bert.embeddings.position_ids"] is None


def test_to_canonical_inverts_from_canonical() -> None:
    m = _bert()
    specs = {"encoder.layer.0.attention.self.query.weight": ((32, 32), F32),
             "embeddings.LayerNorm.weight": ((32,), F32)}
    for fw in ("tf", "flax"):
        fwd = m.from_canonical(fw, specs)
        native = {v[0]: (v[1].shape(specs[k][0]), F32) for k, v in fwd.items()}
        back = m.to_canonical(fw, native)
        assert {v[0] for v in back.values()} == set(specs)
        w = np.arange(32 * 32, dtype=np.float32).reshape(32, 32)
        n, op = fwd["encoder.layer.0.attention.self.query.weight"]
        assert np.array_equal(back[n][1].apply(op.apply(w)), w)


def test_head_checkpoint_under_base_config_switches_architecture() -> None:
    base = _bert()
    m, out = base.for_native("tf", {"tf_bert_for_masked_lm/mlm___cls/predictions/bias": ((99,), F32),
                                    "tf_bert_for_masked_lm/bert/pooler/dense/bias": ((32,), F32)})
    assert m.architecture != "BertModel"
    assert base.architecture == "BertModel"  # the configured map is left as it was
    assert {v[0] for v in out.values()} >= {"cls.predictions.bias"}


def test_unknown_tensor_is_a_layout_error_naming_it() -> None:
    with pytest.raises(LayoutError, match="encoder.layer.0.surprise.weight"):
        _bert().from_canonical("tf", {"encoder.layer.0.surprise.weight": ((2, 2), F32)})
    with pytest.raises(LayoutError, match="bert/mystery"):
        _bert().to_canonical("tf", {"tf_bert_model/bert/mystery": ((2,), F32)})


def test_shape_that_does_not_fit_the_op_is_a_layout_error() -> None:
    m = maps.find_map({"model_type": "resnet"})
    conv = next(e["pt"] for e in m.doc["architectures"][m.architecture]["tensors"]
                if e.get("tf_op") == "perm(2,3,1,0)")
    with pytest.raises(LayoutError):
        m.from_canonical("tf", {conv.format(0, 0, 0, 0): ((3, 3), F32)})


def test_batchnorm_maps_to_flax_collections() -> None:
    m = maps.find_map({"model_type": "resnet"})
    assert m.flax_batch_stats
    tensors = m.doc["architectures"][m.architecture]["tensors"]
    assert any(e["pt"].endswith("running_mean") and e["flax"].startswith("batch_stats/") for e in tensors)
    assert any(e["pt"].endswith("num_batches_tracked") and e["flax"] is None and e["tf"] is None for e in tensors)


def test_generator_helpers() -> None:
    w = np.random.default_rng(0).standard_normal((6, 4, 3, 3)).astype(np.float32)
    assert find_op(w, w.transpose(2, 3, 1, 0)) == "perm(2,3,1,0)"
    assert find_op(w, np.ones((2, 2))) is None
    assert reshape_op((32, 12), (32, 4, 3)) == "split(1,4)"
    rows = [("h.0.w", "t/h_._0/w", "h/0/w"), ("h.1.w", "t/h_._1/w", "h/1/w"), ("h.0.x", None, "odd0"),
            ("h.1.x", None, "odd1")]
    out = generalise(rows)
    assert ("h.{0}.w", "t/h_._{0}/w", "h/{0}/w") in out
    assert ("h.0.x", None, "odd0") in out  # an index the Flax name does not carry stays literal


def _xglm() -> maps.ArchitectureMap:
    return maps.find_map({"model_type": "xglm", "architectures": ["XGLMForCausalLM"]})


EMB = "model.embed_tokens.weight"


def test_tensor_with_copies_maps_to_a_list() -> None:
    out = _xglm().from_canonical("tf", {EMB: ((99, 32), F32), "lm_head.weight": ((99, 32), F32)})
    assert out["lm_head.weight"] is None  # tied to the embeddings, stored once
    (name, op), (copy, copy_op) = out[EMB]
    assert name.endswith("/model/embed_tokens/weight") and str(op) == "identity"
    assert copy.endswith("/lm_head/kernel") and str(copy_op) == "T"
    w = np.arange(99 * 32, dtype=np.float32).reshape(99, 32)
    assert np.array_equal(copy_op.apply(w), w.T)


@pytest.mark.parametrize(("model_type", "arch", "key"), [
    ("xglm", "XGLMForCausalLM", EMB),
    ("speech_to_text", "Speech2TextForConditionalGeneration", "model.decoder.embed_tokens.weight"),
    ("mobilebert", "MobileBertForMaskedLM", "mobilebert.embeddings.word_embeddings.weight"),
    ("mobilebert", "MobileBertForPreTraining", "mobilebert.embeddings.word_embeddings.weight")])
def test_copies_read_back_once(model_type: str, arch: str, key: str) -> None:
    m = maps.find_map({"model_type": model_type, "architectures": [arch]})
    targets = m.from_canonical("tf", {key: ((99, 16), F32)})[key]
    assert isinstance(targets, list) and len(targets) == 2
    native = {n: (op.shape((99, 16)), F32) for n, op in targets}
    back = m.to_canonical("tf", native)
    assert back[targets[0][0]][0] == key and back[targets[1][0]] is None
    # Without its primary, the copy is the one read back, through its own inverse op.
    only_copy = m.to_canonical("tf", {targets[1][0]: native[targets[1][0]]})
    name, op = only_copy[targets[1][0]]
    assert name == key and op.shape(native[targets[1][0]][0]) == (99, 16)


def test_copy_colliding_with_another_tensor_is_a_layout_error() -> None:
    doc = json.loads(json.dumps(_xglm().doc))
    # A second entry claiming the embeddings' PyTorch name: its weight and the copy of the first
    # entry are different tensors, so reading both back must fail rather than drop one.
    doc["architectures"]["XGLMForCausalLM"]["tensors"].append({"pt": EMB, "tf": "other/w", "tf_op": "identity"})
    m = maps.ArchitectureMap(doc, "XGLMForCausalLM")
    ok = m.to_canonical("tf", {"m/model/embed_tokens/weight": ((99, 32), F32), "m/lm_head/kernel": ((32, 99), F32)})
    assert ok["m/lm_head/kernel"] is None
    with pytest.raises(LayoutError, match="map to PyTorch"):
        m.to_canonical("tf", {"m/other/w": ((99, 32), F32), "m/lm_head/kernel": ((32, 99), F32)})


def test_albert_mlm_decoder_bias_is_a_copy_of_the_bias() -> None:
    m = maps.find_map({"model_type": "albert", "architectures": ["AlbertForMaskedLM"]})
    out = m.from_canonical("tf", {"predictions.bias": ((99,), F32), "predictions.decoder.bias": ((99,), F32)})
    assert out["predictions.decoder.bias"] is None  # tied in PyTorch: written once, from predictions.bias
    assert [n.split("/", 1)[1] for n, _ in out["predictions.bias"]] == ["predictions/bias", "predictions/decoder/bias"]


# -- config variants and computed tensors (generator helpers and the runtime side) -----------

def test_variant_tensors_are_carried_to_head_classes_under_their_prefix() -> None:
    from tensorferry.converters.maps.mapgen.record import _merge_variant, _transplant

    base = {"tf": {"only": []}, "flax": {"only": []},
            "tensors": [{"pt": "embeddings.w.weight", "tf": "m/embeddings/w/weight", "flax": "embeddings/w/embedding"}]}
    head = {"tf": {"only": []}, "flax": {"only": []},
            "tensors": [{"pt": "m.embeddings.w.weight", "tf": "m/embeddings/w/weight", "flax": "m/embeddings/w/embedding"}]}
    variant = {"tf": {"class": "TFX", "only": []}, "flax": {"class": "FlaxX", "only": []},
               "tensors": base["tensors"] + [{"pt": "proj.weight", "tf": "m/proj/kernel", "flax": "proj/kernel"},
                                             {"pt": "rel.weight", "tf": None, "flax": None}]}
    added = _merge_variant(base, variant, [({"embedding_size": 16}, {"proj.weight"})],
                           [({"embedding_size": 16}, {"proj.weight"}), ({"kind": "rel"}, {"rel.weight"})])
    assert [e["pt"] for e in added] == ["proj.weight", "rel.weight"]
    assert added[0]["enabled_by"] == [{"embedding_size": 16}] and added[1]["enabled_by"] == [{"kind": "rel"}]
    assert "ignores it" in added[1]["tf_unsupported"]  # the TF class builds but has no such weight
    _transplant(base, head, added, "m")
    proj = next(e for e in head["tensors"] if e["pt"] == "m.proj.weight")
    assert proj["tf"] == "m/proj/kernel" and proj["flax"] == "m/proj/kernel"


def test_explain_shows_the_config_setting_of_an_optional_tensor(tmp_path) -> None:
    from safetensors.numpy import save_file

    from tensorferry.converters.cli import explain
    from tensorferry.converters.pipeline import plan_for
    from tensorferry.converters.checkpoint import open_source

    m = maps.find_map({"model_type": "electra", "architectures": ["ElectraModel"]})
    shapes = {"embeddings.word_embeddings.weight": (30, 16), "embeddings_project.weight": (32, 16),
              "embeddings_project.bias": (32,)}
    save_file({k: np.zeros(s, np.float32) for k, s in shapes.items()}, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "electra", "architectures": ["ElectraModel"],
                                                      "embedding_size": 16, "hidden_size": 32}))
    rows = explain(plan_for(open_source(tmp_path), ["tf"]))["targets"]["tf"]
    notes = {r["from"][0]: r.get("note") for r in rows}
    assert notes["embeddings_project.weight"] == "present when embedding_size=16"
    assert notes["embeddings.word_embeddings.weight"] is None
    assert m.note("embeddings_project.bias") == "present when embedding_size=16"


def test_missing_pytorch_tensors_are_rebuilt_or_listed() -> None:
    from tensorferry.converters.maps.computed import evaluate

    m = maps.find_map({"model_type": "marian", "architectures": ["MarianMTModel"]})
    present = {"model.encoder.layers.0.fc1.weight", "model.decoder.layers.0.fc1.weight", "model.shared.weight"}
    config = {"max_position_embeddings": 8, "d_model": 6}
    found, lost = m.missing_pt("flax", present, config)
    names = dict(found)
    assert set(names) == {"model.encoder.embed_positions.weight", "model.decoder.embed_positions.weight"} and lost == []
    table = evaluate(names["model.encoder.embed_positions.weight"], config)
    assert table.shape == (8, 6) and table.dtype == np.float32
    assert table[0].tolist() == [0, 0, 0, 1, 1, 1]  # sin(0) in the first half, cos(0) in the second
    e = maps.find_map({"model_type": "electra", "architectures": ["ElectraModel"]})
    present = {"encoder.layer.0.attention.self.query.weight", "encoder.layer.1.attention.self.query.weight"}
    _, lost = e.missing_pt("flax", present, {"position_embedding_type": "relative_key"})
    assert lost == [f"encoder.layer.{i}.attention.self.distance_embedding.weight" for i in (0, 1)]
    assert e.missing_pt("flax", present, {"position_embedding_type": "absolute"}) == ([], [])


def test_a_tensor_of_an_option_transformers_cannot_build_is_named_with_it() -> None:
    m = maps.find_map({"model_type": "deberta", "architectures": ["DebertaModel"]})
    with pytest.raises(LayoutError, match="embedding_size=16, with which transformers' class fails to build"):
        m.from_canonical("tf", {"embeddings.embed_proj.weight": ((32, 16), F32)})
