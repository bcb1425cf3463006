"""The converter graph on the fixture checkpoints: exact round trips, dtypes, shards, library read-back."""
from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest
from conftest import FAMILY_NAMES, assert_same_checkpoint, checkpoint_dir

from tensorferry.converters import InputError, convert, open_source
from tensorferry.converters.dtypes import same_bits


@pytest.mark.parametrize("family", FAMILY_NAMES)
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_round_trip_pt_tf_flax_pt_is_bit_exact(tmp_path, family, dtype):
    start = tmp_path / "start"
    convert(checkpoint_dir(family), start, to=["pt"], dtype=dtype)
    convert(start, tmp_path / "tf", to=["tf"])
    convert(tmp_path / "tf" / "tf_model.h5", tmp_path / "flax", to=["flax"])
    convert(tmp_path / "flax" / "flax_model.msgpack", tmp_path / "back", to=["pt"])
    n = assert_same_checkpoint(start / "model.safetensors", tmp_path / "back" / "model.safetensors")
    assert n == len(open_source(checkpoint_dir(family)).infos)
    # integer buffers kept their dtype all the way
    back = open_source(tmp_path / "back")
    assert {str(d) for _, d in back.infos.values()} <= {dtype, "int64"}


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_bfloat16_round_trip_through_tf_needs_an_explicit_exact_cast(tmp_path, family, cli):
    convert(checkpoint_dir(family), tmp_path / "bf16", to=["pt", "flax"], dtype="bfloat16")
    code, _, err = cli("convert", tmp_path / "bf16", "--from", "pt", "--to", "tf", "--out", tmp_path / "tf")
    assert code == 2 and "bfloat16" in err and "tf_model.h5" in err and "--dtype float32" in err
    assert not (tmp_path / "tf").exists() or not any((tmp_path / "tf").iterdir())
    # Flax holds bfloat16 as is; TF gets an exact float32 copy; back to bfloat16 is exact again.
    convert(tmp_path / "bf16" / "flax_model.msgpack", tmp_path / "back1", to=["pt"])
    assert_same_checkpoint(tmp_path / "bf16" / "model.safetensors", tmp_path / "back1" / "model.safetensors")
    convert(tmp_path / "bf16", tmp_path / "tf", to=["tf"], dtype="float32", source_framework="pt")
    convert(tmp_path / "tf", tmp_path / "back2", to=["pt"], dtype="bfloat16")
    assert_same_checkpoint(tmp_path / "bf16" / "model.safetensors", tmp_path / "back2" / "model.safetensors")


def test_outputs_read_back_with_their_own_libraries(tmp_path):
    from flax.serialization import msgpack_restore
    from safetensors.numpy import load_file

    convert(checkpoint_dir("cnn"), tmp_path, to=["pt", "tf", "flax"])
    source = open_source(checkpoint_dir("cnn"))
    st = load_file(tmp_path / "model.safetensors")
    assert set(st) == set(source.infos) and all(same_bits(st[k], source.load(k)) for k in st)
    tree = msgpack_restore((tmp_path / "flax_model.msgpack").read_bytes())
    assert sorted(tree) == ["__tensorferry__", "batch_stats", "params"]
    w = source.load("conv.weight")
    assert same_bits(tree["params"]["conv"]["kernel"], np.ascontiguousarray(w.transpose(2, 3, 1, 0)))
    assert same_bits(tree["batch_stats"]["bn1"]["var"], source.load("bn1.running_var"))
    assert int(tree["__tensorferry__"]["bn1.num_batches_tracked"]) == int(source.load("bn1.num_batches_tracked"))
    with h5py.File(tmp_path / "tf_model.h5") as f:
        # the map gives the model order back (the safetensors file sorts names), as Keras needs
        assert [n.decode() for n in f.attrs["layer_names"]] == ["conv", "bn1", "dw", "bn2", "up", "head"]
        names = [n.decode() for n in f["bn1"].attrs["weight_names"]]
        assert names == [f"tf_tiny_cnn/bn1/{leaf}:0" for leaf in ("gamma", "beta", "moving_mean", "moving_variance")]
        dw = f["dw"]["tf_tiny_cnn/dw/depthwise_kernel:0"][...]
        assert dw.shape == (3, 3, 8, 2)
        pt = source.load("dw.weight")  # (C·m, 1, kh, kw): output channel c·m + j is Keras' [.., c, j]
        assert same_bits(dw[:, :, 3, 1], pt[3 * 2 + 1, 0])
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "tensorferry-tiny-cnn"


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_sharded_in_sharded_out(tmp_path, family):
    size = "1KB"
    convert(checkpoint_dir(family), tmp_path / "a", to=["pt", "tf", "flax"], max_shard_size=size)
    for index, pattern in [("model.safetensors.index.json", "model-*-of-*.safetensors"),
                           ("tf_model.h5.index.json", "tf_model-*-of-*.h5"),
                           ("flax_model.msgpack.index.json", "flax_model-*-of-*.msgpack")]:
        data = json.loads((tmp_path / "a" / index).read_text())
        shards = sorted((tmp_path / "a").glob(pattern))
        assert len(shards) > 1 and sorted(set(data["weight_map"].values())) == [s.name for s in shards]
        assert data["metadata"]["total_size"] > 0
    assert not (tmp_path / "a" / "model.safetensors").exists()
    # each sharded variant is a source in its own right, to sharded outputs again
    for fw in ("pt", "tf", "flax"):
        convert(tmp_path / "a", tmp_path / f"from-{fw}", to=["pt"], source_framework=fw, max_shard_size=size)
        assert (tmp_path / f"from-{fw}" / "model.safetensors.index.json").exists()
        convert(tmp_path / f"from-{fw}", tmp_path / f"single-{fw}", to=["pt"])
        assert_same_checkpoint(checkpoint_dir(family) / "model.safetensors", tmp_path / f"single-{fw}" / "model.safetensors")


def test_sharded_tf_layout_matches_transformers(tmp_path):
    convert(checkpoint_dir("transformer"), tmp_path, to=["tf", "flax"], max_shard_size="20KB")
    index = json.loads((tmp_path / "tf_model.h5.index.json").read_text())
    first = next(iter(index["weight_map"]))
    assert first.startswith("tf_tiny_transformer/") and first.endswith(":0")
    with h5py.File(tmp_path / index["weight_map"][first]) as f:
        listed = [n.decode() for n in f.attrs["layer_names"]]
        assert first.split("/", 1)[1] in listed and f[listed[0]].shape is not None
    from flax.serialization import msgpack_restore
    from flax.traverse_util import flatten_dict

    flax_index = json.loads((tmp_path / "flax_model.msgpack.index.json").read_text())
    seen = set()
    for shard in sorted(set(flax_index["weight_map"].values())):
        flat = flatten_dict(msgpack_restore((tmp_path / shard).read_bytes()), sep="/")
        seen |= {k for k in flat if not k.startswith("__tensorferry__")}
    assert seen == set(flax_index["weight_map"])


def test_pickle_source_with_tied_weights(tmp_path):
    import torch

    from tensorferry.fixtures import transformer

    model = transformer.torch_model(transformer.CONFIG)
    state = model.state_dict()
    assert state["lm_head.weight"].data_ptr() == state["embeddings.word_embeddings.weight"].data_ptr()
    torch.save(state, tmp_path / "weights.pth")  # any name: the format comes from the content
    result = convert(tmp_path / "weights.pth", tmp_path / "out", to=["pt", "tf", "flax"],
                     layout_map="converters/maps/data/kinds/tensorferry-tiny-transformer.json")
    out = open_source(tmp_path / "out" / "model.safetensors")
    assert out.ties == {"lm_head.weight": "embeddings.word_embeddings.weight"}
    assert "lm_head.weight" not in out.infos  # written once
    for name, tensor in state.items():
        if name != "lm_head.weight":
            assert np.array_equal(out.load(name), tensor.numpy()), name
    assert result.heuristics == {}
    # TF and Flax tie by structure; the names come back with the PyTorch variant
    for fw, name in (("tf", "tf_model.h5"), ("flax", "flax_model.msgpack")):
        convert(tmp_path / "out" / name, tmp_path / f"back-{fw}", to=["pt"])
        assert open_source(tmp_path / f"back-{fw}" / "model.safetensors").ties == out.ties


def test_sharded_pickle_source(tmp_path):
    import torch

    state = {k: torch.from_numpy(open_source(checkpoint_dir("cnn")).load(k).copy()) for k in open_source(checkpoint_dir("cnn")).infos}
    names = sorted(state)
    half = len(names) // 2
    src = tmp_path / "bin"
    src.mkdir()
    shutil.copy(checkpoint_dir("cnn") / "config.json", src)
    weight_map = {}
    for i, part in enumerate((names[:half], names[half:])):
        fname = f"pytorch_model-0000{i + 1}-of-00002.bin"
        torch.save({k: state[k] for k in part}, src / fname)
        weight_map.update({k: fname for k in part})
    (src / "pytorch_model.bin.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    convert(src, tmp_path / "out", to=["pt", "tf"])
    assert_same_checkpoint(checkpoint_dir("cnn") / "model.safetensors", tmp_path / "out" / "model.safetensors")


def test_unknown_dtype_and_target_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="unknown framework"):
        convert(checkpoint_dir("cnn"), tmp_path, to=["onnx"])
    with pytest.raises(InputError, match="unknown dtype"):
        convert(checkpoint_dir("cnn"), tmp_path, to=["pt"], dtype="float13")


@pytest.mark.parametrize("shard", ["5GB", "2KB"])
def test_each_written_file_carries_its_sha256_computed_while_writing(tmp_path, shard) -> None:
    """The Hub's LFS needs every file's sha256: the writers compute it on the way out (h5 too)."""
    import hashlib

    result = convert(checkpoint_dir("transformer"), tmp_path, to=["pt", "tf", "flax"], max_shard_size=shard, digests=True)
    seen = 0
    for out in result.outputs.values():
        weights = [f for f in out.files if not f.endswith(".index.json")]
        assert set(out.digests) == set(weights)
        for name, digest in out.digests.items():
            data = (tmp_path / name).read_bytes()
            assert digest.size == len(data) and digest.sha256 == hashlib.sha256(data).hexdigest(), name
            assert digest.sample == data[:512]
            seen += 1
    assert seen >= (3 if shard == "5GB" else 6)
