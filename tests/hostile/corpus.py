"""Write the fuzz seed corpus (``corpus/<codec>/``): small valid files of every shape each codec reads.

The files are committed; rerun ``python -m hostile.corpus`` from ``tests/`` after changing a builder.
"""
from __future__ import annotations

import json
import shutil

import h5py
import ml_dtypes
import numpy as np

from .build import B, W, arr_ext, chunked, flax_tree, write_h5, write_msgpack, write_pt, write_st
from .fuzz import CORPUS


def _safetensors(d):
    write_st(d / "fc.safetensors")
    write_st(d / "ties.safetensors", metadata={"format": "pt", "tensorferry.ties": '{"head.weight": "fc.weight"}'})
    write_st(d / "ints.safetensors", {"steps": np.arange(3, dtype="int64"), "scalar": np.array(1.5, "float32").reshape(())})
    (d / "empty-header.safetensors").write_bytes(b"\x02\x00\x00\x00\x00\x00\x00\x00{}")


def _h5(d):
    write_h5(d / "keras.h5")
    write_h5(d / "extras.h5", extras={"fc.bias_hh": B, "tensorferry.ties": np.frombuffer(b'{"a": "b"}', np.uint8)})
    write_h5(d / "gzip.h5", lambda g, n, a: g.create_dataset(n, data=a, compression="gzip"))
    with h5py.File(d / "sharded.h5", "w") as f:
        f.attrs["layer_names"] = np.asarray([b"fc/kernel:0", b"fc/bias:0"])
        f.create_dataset("fc/kernel:0", data=W.T.copy())
        f.create_dataset("fc/bias:0", data=B.astype(">f4"))


def _msgpack(d):
    write_msgpack(d / "flax.msgpack")
    half = W.T.reshape(-1)
    tree = flax_tree()
    tree["fc"]["kernel"] = chunked({"0": 3, "1": 4}, {"0": arr_ext(half[:6].copy()), "1": arr_ext(half[6:].copy())})
    write_msgpack(d / "chunked.msgpack", tree)
    write_msgpack(d / "collections.msgpack", {"params": flax_tree(), "batch_stats": {"bn": {"mean": arr_ext(B)}},
                                              "__tensorferry__": {"tensorferry.ties": arr_ext(np.frombuffer(b"{}", np.uint8))}})
    write_msgpack(d / "bf16.msgpack", {"e": {"embedding": arr_ext(W.astype(ml_dtypes.bfloat16))}})


def _pickle(d):
    import torch

    from .build import torch_tensors

    write_pt(d / "state.bin", torch_tensors())
    t = torch_tensors()
    t["head.weight"] = t["fc.weight"]  # a tie: one storage, two names
    write_pt(d / "tied.bin", t)


def _index(d):
    weight_map = {"fc.weight": "model-00001-of-00002.safetensors", "fc.bias": "model-00002-of-00002.safetensors"}
    (d / "index.json").write_text(json.dumps({"metadata": {"total_size": 64}, "weight_map": weight_map}))


def _config(d):
    (d / "bert.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertModel"], "hidden_size": 4}))
    (d / "cnn.json").write_text(json.dumps({"model_type": "tensorferry-tiny-cnn"}))
    (d / "plain.json").write_text("{}")


WRITERS = {"safetensors": _safetensors, "h5": _h5, "msgpack": _msgpack, "pickle": _pickle, "index": _index, "config": _config}


def main() -> None:
    for codec, write in WRITERS.items():
        d = CORPUS / codec
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        write(d)
        print(codec, sorted(p.name for p in d.iterdir()))


if __name__ == "__main__":
    main()
