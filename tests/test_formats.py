"""The codecs against the libraries made for each format."""
from __future__ import annotations

import h5py
import ml_dtypes
import numpy as np
import pytest
from conftest import checkpoint_dir

from tensorferry.converters import convert, open_source
from tensorferry.converters.dtypes import same_bits
from tensorferry.converters.formats import h5_file, msgpack_file


def _tree():
    rng = np.random.default_rng(0)
    return {"params": {"dense": {"kernel": rng.standard_normal((6, 5)).astype(np.float32), "bias": np.arange(5, dtype=np.float16)},
                       "embed": {"embedding": rng.standard_normal((40, 3)).astype(ml_dtypes.bfloat16)},
                       "scale": np.array(1.5, np.float32)},
            "batch_stats": {"bn": {"mean": np.zeros(4, np.float32), "var": np.ones(4, np.float32)}},
            "steps": np.arange(3, dtype=np.int64)}


def _flat(tree, prefix=""):
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}/"))
        else:
            out[prefix + k] = v
    return out


def test_msgpack_writer_is_byte_identical_to_flax_to_bytes(tmp_path):
    from flax.serialization import to_bytes

    flat = _flat(_tree())
    msgpack_file.write(tmp_path / "a.msgpack", [(k, v.shape, v.dtype) for k, v in flat.items()], flat.__getitem__)
    assert (tmp_path / "a.msgpack").read_bytes() == to_bytes(_tree())


def test_chunked_arrays_both_ways(tmp_path, monkeypatch):
    import flax.serialization as fs

    flat = _flat(_tree())
    # Our writer chunks past max_chunk, as flax does past its MAX_CHUNK_SIZE (1 GiB; shrunk for the test).
    msgpack_file.write(tmp_path / "ours.msgpack", [(k, v.shape, v.dtype) for k, v in flat.items()], flat.__getitem__, max_chunk=64)
    restored = _flat(fs.msgpack_restore((tmp_path / "ours.msgpack").read_bytes()))
    assert set(restored) == set(flat) and all(same_bits(np.asarray(restored[k]), flat[k]) for k in flat)
    assert b"__msgpack_chunked_array__" in (tmp_path / "ours.msgpack").read_bytes()
    monkeypatch.setattr(fs, "MAX_CHUNK_SIZE", 64)
    (tmp_path / "flax.msgpack").write_bytes(fs.to_bytes(_tree()))
    assert b"__msgpack_chunked_array__" in (tmp_path / "flax.msgpack").read_bytes()
    reader = msgpack_file.MsgpackFile(tmp_path / "flax.msgpack")
    assert set(reader.infos) == set(flat)
    for k, v in flat.items():
        assert same_bits(reader.load(k), v), k


def test_keras_attribute_lists_are_split_like_keras(tmp_path):
    names = [f"model/layer_._{i}/a_rather_long_scope_name/dense/kernel" for i in range(1500)]
    with h5py.File(tmp_path / "x.h5", "w") as f:
        h5_file.write_attr_list(f, "weight_names", names)
        assert "weight_names" not in f.attrs and "weight_names0" in f.attrs and "weight_names1" in f.attrs
    with h5py.File(tmp_path / "x.h5") as f:
        assert h5_file.read_attr_list(f, "weight_names") == names


def test_keras_reads_tensorferry_h5_by_name(tmp_path):
    """tf_keras' own by-name loader (top-level layers by name, weights by order) reads the file."""
    import tf_keras

    from tensorferry.fixtures import cnn

    convert(checkpoint_dir("cnn"), tmp_path, to=["tf"])
    model = cnn.keras_model(cnn.CONFIG)
    model.load_weights(str(tmp_path / "tf_model.h5"), by_name=True)
    source = open_source(checkpoint_dir("cnn"))
    kernel = {w.name: w.numpy() for w in model.weights}["tf_tiny_cnn/head/kernel:0"]
    assert same_bits(kernel, np.ascontiguousarray(source.load("head.weight").T))
    assert isinstance(model, tf_keras.Model)


@pytest.mark.parametrize("dtype", ["float16", "float32", "int64"])
def test_h5_values_round_trip_exactly(tmp_path, dtype):
    arr = (np.arange(24).reshape(2, 3, 4) * 0.37).astype(dtype)
    h5_file.write(tmp_path / "t.h5", [("layer", ["model/layer/w"])], {"model/layer/w": (arr.shape, arr.dtype)}, lambda n: arr)
    reader = h5_file.KerasH5File(tmp_path / "t.h5")
    assert same_bits(np.asarray(reader.load("model/layer/w")), arr)
