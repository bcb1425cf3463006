"""Small checkpoints written byte by byte (or by the format's own library), good or deliberately bad.

Every builder writes one tiny model, ``fc.weight (4, 3)`` and ``fc.bias (4,)`` in float32, in
one format; the hostile cases take these and break one thing each.
"""
from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

import h5py
import msgpack
import numpy as np

W = np.arange(12, dtype="float32").reshape(4, 3)
B = np.arange(4, dtype="float32") + 100
TENSORS = {"fc.weight": W, "fc.bias": B}
SECRET = b"SECRET-0123456789abcdef-" * 2  # 48 bytes: what a hostile file tries to pull in


# -- safetensors ----------------------------------------------------------------------------
def st_header(tensors: dict[str, np.ndarray] = TENSORS, metadata: dict | None = None) -> tuple[dict, bytes]:
    header: dict = {"__metadata__": metadata} if metadata is not None else {}
    data, offset = b"", 0
    for name, arr in tensors.items():
        header[name] = {"dtype": {"float32": "F32", "int64": "I64"}[arr.dtype.name], "shape": list(arr.shape),
                        "data_offsets": [offset, offset + arr.nbytes]}
        data += arr.tobytes()
        offset += arr.nbytes
    return header, data


def st_bytes(header: dict | bytes | str, data: bytes, length: int | None = None) -> bytes:
    """A safetensors file from a header (dict, or raw JSON text) and the data bytes."""
    raw = header if isinstance(header, bytes) else (header.encode() if isinstance(header, str) else json.dumps(header).encode())
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


def write_st(path: Path, tensors: dict[str, np.ndarray] = TENSORS, metadata: dict | None = None) -> Path:
    header, data = st_header(tensors, metadata)
    path.write_bytes(st_bytes(header, data))
    return path


# -- Keras HDF5 -----------------------------------------------------------------------------
KERAS = {"fc.weight": ("model/fc/kernel:0", W.T.copy()), "fc.bias": ("model/fc/bias:0", B)}


def write_h5(path: Path, dataset=None, extras: dict | None = None) -> Path:
    """A Keras-2 file with layer ``fc``; ``dataset(group, name, array)`` may replace how a weight is stored."""
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.asarray([b"fc"])
        g = f.create_group("fc")
        g.attrs["weight_names"] = np.asarray([n.encode() for n, _ in KERAS.values()])
        for name, arr in KERAS.values():
            if dataset is None or dataset(g, name, arr) is None:
                if name not in g:
                    g.create_dataset(name, data=arr)
        if extras:
            e = f.create_group("tensorferry_extras")
            for k, v in extras.items():
                e.create_dataset(k, data=v)
    return path


def write_other_h5(path: Path) -> Path:
    """Another HDF5 file, the target of external links and virtual datasets."""
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=np.frombuffer(SECRET, "float32").reshape(3, 4))
        f.create_group("fc").create_dataset("model/fc/kernel:0", data=np.frombuffer(SECRET, "float32").reshape(3, 4))
        f["fc"].attrs["weight_names"] = np.asarray([b"model/fc/kernel:0"])
    return path


# -- Flax msgpack ---------------------------------------------------------------------------
def ext(shape, dtype: str, data: bytes, code: int = 1) -> msgpack.ExtType:
    return msgpack.ExtType(code, msgpack.packb([shape, dtype, data], use_bin_type=True))


def arr_ext(arr: np.ndarray) -> msgpack.ExtType:
    return ext(list(arr.shape), arr.dtype.name, arr.tobytes())


def flax_tree() -> dict:
    return {"fc": {"kernel": arr_ext(W.T.copy()), "bias": arr_ext(B)}}


def write_msgpack(path: Path, tree: dict | None = None) -> Path:
    path.write_bytes(msgpack.packb(flax_tree() if tree is None else tree, use_bin_type=True))
    return path


def chunked(shape: dict, chunks: dict, **more) -> dict:
    return {"__msgpack_chunked_array__": True, "shape": shape, "chunks": chunks, **more}


def mp_map(*pairs: tuple[bytes, bytes]) -> bytes:
    """A msgpack map from already packed (key, value) pairs: duplicates and odd keys allowed."""
    n = len(pairs)
    head = bytes([0x80 | n]) if n < 16 else b"\xde" + struct.pack(">H", n)
    return head + b"".join(k + v for k, v in pairs)


def pk(obj) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


# -- PyTorch pickles ------------------------------------------------------------------------
def write_pt(path: Path, obj) -> Path:
    import torch

    torch.save(obj, path)
    return path


def torch_tensors() -> dict:
    import torch

    return {k: torch.from_numpy(v.copy()) for k, v in TENSORS.items()}


def rewrite_zip_member(path: Path, suffix: str, mutate) -> Path:
    """Rewrite one member of a torch zip checkpoint (e.g. ``data.pkl``) with ``mutate(bytes)``."""
    with zipfile.ZipFile(path) as z:
        members = [(i, z.read(i.filename)) for i in z.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for info, data in members:
            z.writestr(info, mutate(data) if info.filename.endswith(suffix) else data)
    return path


# -- folders --------------------------------------------------------------------------------
def folder(root: Path, files: dict[str, bytes | str | Path | None], config: dict | str | None = None) -> Path:
    """A checkpoint folder: name → bytes, text, or a file to copy."""
    root.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        target = root / name
        if isinstance(content, Path):
            target.write_bytes(content.read_bytes())
        elif isinstance(content, str):
            target.write_text(content)
        elif content is not None:
            target.write_bytes(content)
    if config is not None:
        (root / "config.json").write_text(config if isinstance(config, str) else json.dumps(config))
    return root


def st_shards(root: Path, index: dict | str | bytes | None = None, shards: dict[str, dict] | None = None) -> Path:
    """A sharded safetensors folder: two shards and an index (or the given ones)."""
    root.mkdir(parents=True, exist_ok=True)
    shards = shards or {"model-00001-of-00002.safetensors": {"fc.weight": W}, "model-00002-of-00002.safetensors": {"fc.bias": B}}
    for name, tensors in shards.items():
        write_st(root / name, tensors)
    if index is None:
        index = {"metadata": {"total_size": 64}, "weight_map": {k: n for n, t in shards.items() for k in t}}
    raw = index if isinstance(index, bytes) else (index if isinstance(index, str) else json.dumps(index)).encode()
    (root / "model.safetensors.index.json").write_bytes(raw)
    return root


def deep_json(depth: int = 100_000) -> str:
    return "[" * depth + "]" * depth
