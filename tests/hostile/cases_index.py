"""Shard indexes (``*.index.json``): names that are paths, values of the wrong type, indexes that lie about shards."""
from __future__ import annotations

import json
import os

import h5py
import numpy as np

from .build import B, KERAS, W, arr_ext, deep_json, st_shards, write_h5, write_msgpack
from .case import Case, Setup

INDEX = "model.safetensors.index.json"
S1, S2 = "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
GOOD_MAP = {"fc.weight": S1, "fc.bias": S2}


def _index(index, shards=None):
    def build(tmp):
        return Setup(st_shards(tmp / "src", index, shards))
    return build


def _map(**changes):
    return _index({"weight_map": {**GOOD_MAP, **changes}})


def _edit(edit):
    def build(tmp):
        root = st_shards(tmp / "src")
        edit(tmp, root)
        return Setup(root)
    return build


def _dup_keys() -> str:
    return '{"weight_map": {"fc.weight": "%s", "fc.bias": "%s", "fc.weight": "%s"}}' % (S1, S2, S2)


def _fifo_shard(tmp, root):
    (root / S2).unlink()
    os.mkfifo(root / S2)


def _dir_shard(tmp, root):
    (root / S2).unlink()
    (root / S2).mkdir()


def _outside_shard(tmp, root):
    elsewhere = tmp / "elsewhere"
    elsewhere.mkdir()
    (root / S2).rename(elsewhere / S2)
    (root / S2).symlink_to(elsewhere / S2)


def _fifo_index(tmp, root):
    (root / INDEX).unlink()
    os.mkfifo(root / INDEX)


def _h5_shard(tmp, root):
    (root / S2).unlink()
    write_h5(root / S2)


def _sparse_index(tmp, root):
    with open(root / INDEX, "r+b") as fh:  # 200 MB of nothing after the JSON: over the size limit
        fh.truncate(200 * 2**20)


def _tf_index(tmp):
    root = tmp / "src"
    root.mkdir()
    for i, (name, arr) in enumerate(KERAS.values(), 1):
        with h5py.File(root / f"tf_model-0000{i}-of-00002.h5", "w") as f:
            short = name.split("/", 1)[1]
            f.attrs["layer_names"] = np.asarray([short.encode()])
            f.create_dataset(short, data=arr)
    weight_map = {"model/fc/kernel:0": "tf_model-00001-of-00002.h5", "model/fc/bias:0": "tf_model-00002-of-00002.h5",
                  "model/fc/ghost:0": "tf_model-00002-of-00002.h5"}
    (root / "tf_model.h5.index.json").write_text(json.dumps({"weight_map": weight_map}))
    return Setup(root)


def _flax_index(tmp):
    root = tmp / "src"
    root.mkdir()
    write_msgpack(root / "flax_model-00001-of-00002.msgpack", {"fc": {"kernel": arr_ext(W.T.copy())}})
    write_msgpack(root / "flax_model-00002-of-00002.msgpack", {"fc": {"bias": arr_ext(B)}, "head": {"bias": arr_ext(B)}})
    weight_map = {"fc/kernel": "flax_model-00001-of-00002.msgpack", "fc/bias": "flax_model-00002-of-00002.msgpack"}
    (root / "flax_model.msgpack.index.json").write_text(json.dumps({"weight_map": weight_map}))
    return Setup(root)


CASES: list[Case] = [Case("index-" + key, build, names, tuple(words)) for key, build, names, words in [
    # weight_map values must be plain file names of shards in the folder
    ("value-int", _map(**{"fc.bias": 2}), INDEX, ["fc.bias"]),
    ("value-null", _map(**{"fc.bias": None}), INDEX, ["fc.bias"]),
    ("value-list", _map(**{"fc.bias": [S2]}), INDEX, ["fc.bias"]),
    ("value-object", _map(**{"fc.bias": {"file": S2}}), INDEX, ["fc.bias"]),
    ("value-empty", _map(**{"fc.bias": ""}), INDEX, []),
    ("value-parent", _map(**{"fc.bias": "../" + S2}), INDEX, []),
    ("value-dotdot", _map(**{"fc.bias": ".."}), INDEX, []),
    ("value-absolute", _map(**{"fc.bias": "/etc/passwd"}), INDEX, []),
    ("value-subfolder", _map(**{"fc.bias": "sub/" + S2}), INDEX, []),
    ("value-backslash", _map(**{"fc.bias": "..\\" + S2}), INDEX, []),
    ("value-nul", _map(**{"fc.bias": S2 + "\u0000.txt"}), INDEX, []),
    ("value-hidden", _map(**{"fc.bias": ".hidden"}), INDEX, []),
    ("shard-missing", _map(**{"fc.bias": "model-00003-of-00003.safetensors"}), INDEX, ["missing"]),
    ("shard-is-the-index", _map(**{"fc.bias": INDEX}), INDEX, []),
    # the index and the shards must agree
    ("lists-tensor-shard-lacks", _map(**{"fc.ghost": S2}), INDEX, ["fc.ghost"]),
    ("shard-has-unlisted-tensor", _index({"weight_map": GOOD_MAP}, {S1: {"fc.weight": W, "fc.extra": B}, S2: {"fc.bias": B}}), S1, ["fc.extra"]),
    ("tensor-in-other-shard", _index({"weight_map": {"fc.weight": S2, "fc.bias": S1}}), INDEX, ["but it is in"]),
    ("tensor-in-two-shards", _index({"weight_map": GOOD_MAP}, {S1: {"fc.weight": W}, S2: {"fc.bias": B, "fc.weight": W}}), S2, ["fc.weight"]),
    ("duplicate-key", _index(_dup_keys()), INDEX, ["fc.weight"]),
    ("tf-lists-tensor-shard-lacks", _tf_index, "tf_model.h5.index.json", ["ghost"]),
    ("flax-shard-has-unlisted-tensor", _flax_index, "flax_model-00002-of-00002.msgpack", ["head/bias"]),
    # the index as a whole
    ("no-weight-map", _index({"metadata": {}}), INDEX, ["weight_map"]),
    ("weight-map-list", _index({"weight_map": [S1, S2]}), INDEX, ["weight_map"]),
    ("weight-map-empty", _index({"weight_map": {}}), INDEX, ["weight_map"]),
    ("array", _index("[]"), INDEX, []),
    ("not-json", _index("{weight_map"), INDEX, []),
    ("not-utf8", _index(b'{"weight_map": {"\xff": 1}}'), INDEX, []),
    ("deep-nesting", _index(deep_json()), INDEX, []),
    ("deep-in-metadata", _index('{"metadata": ' + deep_json() + ', "weight_map": {}}'), INDEX, []),
    ("over-size-limit", _edit(_sparse_index), INDEX, ["limit"]),
    # shards and index that are not regular files in the folder
    ("shard-fifo", _edit(_fifo_shard), S2, ["regular file"]),
    ("shard-folder", _edit(_dir_shard), S2, ["regular file"]),
    ("shard-symlink-outside", _edit(_outside_shard), S2, ["outside"]),
    ("index-fifo", _edit(_fifo_index), INDEX, ["regular file"]),
    ("shards-of-two-formats", _edit(_h5_shard), INDEX, [S2 + " is h5"]),
]]
