"""Finding and opening a checkpoint: a folder with standard file names, or one file of any name.

A source is read lazily and as one flat name space whatever its sharding; its format is taken
from file content, never from the file name.

>>> src = open_source("fixtures/checkpoints/cnn")
>>> src.framework, src.infos["conv.weight"]
('pt', ((8, 3, 3, 3), dtype('float32')))
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .constants import CONFIG, EXTRA, FILES, NNX_DIR, STANDARD, TIES_KEY
from .errors import InputError
from .formats import limits
from .formats import keras3_file, orbax_dir
from .formats.h5_file import KerasH5File, native_dtype
from .formats.msgpack_file import MsgpackFile
from .formats.pickle_file import PickleFile
from .formats.safetensors_file import SafetensorsFile
from .selection import Found
from .layouts import tf

FORMAT_FRAMEWORK = {"safetensors": "pt", "pickle": "pt", "h5": "tf", "msgpack": "flax", "keras": "tf"}
# Keras 3 files found in a folder when no standard name is there, in order of preference.
KERAS3_NAMES = ("model.weights.h5", "model.weights.json", "*.weights.json", "*.weights.h5", "*.keras")


def sniff(path: Path) -> str:
    """The format of a weights file from its first bytes: safetensors, h5, pickle or msgpack."""
    try:
        with limits.open_regular(path) as fh:
            head = fh.read(16)
            size = fh.seek(0, 2)
    except OSError as e:
        raise InputError(path, f"cannot read: {e.strerror}") from None
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "h5"
    if head.startswith(b"PK\x03\x04") and keras3_file.is_archive(path):
        return "keras"
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "pickle"
    msgpack_map = bool(head[:1]) and (0x80 <= head[0] <= 0x8F or head[0] in (0xDE, 0xDF))
    # safetensors: a little-endian header length, then "{"; a length past the end is still
    # safetensors (truncated or lying, which its reader says), unless the bytes read as a msgpack map
    if len(head) >= 9 and head[8:9] == b"{" and (int.from_bytes(head[:8], "little") < size or not msgpack_map):
        return "safetensors"
    if msgpack_map:
        return "msgpack"
    raise InputError(path, "unknown format: not safetensors, HDF5, a PyTorch pickle or a Flax msgpack file" if size else "empty file")


def _open_file(path: Path, fmt: str, model_name: str, key: str | None = None):
    if fmt == "safetensors":
        return SafetensorsFile(path)
    if fmt == "h5":
        return keras3_file.Keras3H5File(path) if _is_keras3_h5(path) else KerasH5File(path, model_name)
    if fmt == "keras":
        return keras3_file.KerasArchive(path)
    if fmt == "msgpack":
        return MsgpackFile(path)
    return PickleFile(path, key)


def _is_keras3_h5(path: Path) -> bool:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return keras3_file.is_keras3(f)
    except OSError:
        return False  # the Keras-2 reader says what is wrong with it


@dataclass
class Source:
    """A checkpoint in one framework's layout, opened lazily."""

    framework: str
    files: list[Path]
    config: dict | None = None
    config_path: Path | None = None
    infos: dict[str, tuple[tuple[int, ...], np.dtype]] = field(default_factory=dict)
    extras: dict[str, tuple[tuple[int, ...], np.dtype]] = field(default_factory=dict)  # side data, by canonical name
    ties: dict[str, str] = field(default_factory=dict)  # alias → tensor it shares data with
    found: Found | None = None  # a training checkpoint: where its state dict was, what was left out
    keras: dict | None = None  # a .keras archive: its config.json and metadata.json, reported
    dropped: list[str] = field(default_factory=list)  # tensors --drop left out of ``infos``
    _where: dict[str, object] = field(default_factory=dict, repr=False)

    def load(self, name: str) -> np.ndarray:
        """One tensor by native name (``__tensorferry__/x`` for side data)."""
        reader = self._where[name]
        if name.startswith(EXTRA + "/"):
            return np.asarray(reader.load_extra(name[len(EXTRA) + 1:])) if isinstance(reader, KerasH5File) else reader.load(name)
        return reader.load(name)

    @property
    def nbytes(self) -> int:
        return sum(math.prod(s) * d.itemsize for s, d in self.infos.values())


def _read_json(path: Path, what: str, root: Path) -> dict:
    data = limits.read_json(path, what, root)
    if not isinstance(data, dict):
        raise InputError(path, f"{what}: expected a JSON object")
    return data


# config.json fields conversion reads, with what each must be: a name is looked up, never used as a path.
MODEL_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
CLASS_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
SHARD_NAME = re.compile(r"[^./\\\x00-\x1f][^/\\\x00-\x1f]*")  # a plain file name, not hidden, no path
CONFIG_FIELDS = {
    "model_type": ("a model type name like 'bert'", lambda v: isinstance(v, str) and MODEL_TYPE.fullmatch(v) and ".." not in v),
    "architectures": ("a list of class names like ['BertModel']",
                      lambda v: isinstance(v, list) and all(isinstance(a, str) and CLASS_NAME.fullmatch(a) for a in v)),
}


def read_config(path: Path, root: Path) -> dict:
    """``config.json``, with the fields conversion uses checked (``CONFIG_FIELDS``).

    >>> read_config(Path("fixtures/checkpoints/cnn/config.json"), Path("fixtures/checkpoints/cnn"))["model_type"]
    'tensorferry-tiny-cnn'
    """
    config = _read_json(path, "config", root)
    for key, (want, ok) in CONFIG_FIELDS.items():
        if config.get(key) is not None and not ok(config[key]):
            shown = repr(config[key])
            raise InputError(path, f"`{key}` must be {want}, not {shown[:80] + '…' if len(shown) > 80 else shown}")
    return config


def _shard_names(index: Path, weight_map: object) -> dict[str, str]:
    """The index's ``weight_map`` (tensor → shard file), each shard a plain file name in the index's folder."""
    if not isinstance(weight_map, dict) or not weight_map:
        raise InputError(index, "index without a `weight_map` object of tensor names to shard files")
    for tensor, shard in weight_map.items():
        limits.tensor_name(tensor, index)
        if not isinstance(shard, str):
            raise InputError(index, f"`weight_map` gives {tensor!r} the shard {shard!r}, not a file name")
        if not SHARD_NAME.fullmatch(shard) or shard == index.name:
            raise InputError(index, f"shard name {shard!r} (for {tensor!r}) is not a file in the index's folder")
    return weight_map


def _check_index(index: Path, weight_map: dict[str, str], readers: dict[Path, object], framework: str) -> None:
    """The index and its shards agree: each listed tensor is in its shard, each shard tensor is listed.

    A TF index lists full Keras names (``model/…/kernel:0``) while sharded h5 files drop the model name.
    """
    def key(name: str) -> str:
        return name.removesuffix(":0").split("/", 1)[-1] if framework == "tf" else name

    listed = {key(t): s for t, s in weight_map.items()}
    for path, reader in readers.items():
        held = {key(n) for n in reader.infos if not n.startswith(EXTRA + "/")} | set(getattr(reader, "ties", {}))
        for name in sorted(held):
            if name not in listed:
                raise InputError(path, f"holds tensor {name!r}, which the index {index.name} does not list")
            if listed[name] != path.name:
                raise InputError(index, f"lists {name!r} in {listed[name]}, but it is in {path.name}")
        for name in sorted(n for n, s in listed.items() if s == path.name and n not in held):
            raise InputError(index, f"lists tensor {name!r} in {path.name}, which does not hold it")


def open_source(src: str | Path, framework: str | None = None, key: str | None = None) -> Source:
    """Open SRC: a folder (standard names, with ``config.json``) or a single weights file.

    ``framework`` ("pt", "tf", "flax") picks one when a folder holds several; ``key`` is where
    the state dict is inside a PyTorch training checkpoint (``--key``).  Only regular files are
    read, and in a folder only files inside it (see ``formats.limits.regular_file``).
    """
    src = Path(src)
    if not src.exists():
        raise InputError(src, "no such file or folder")
    config_path = None
    if src.is_dir() and orbax_dir.is_orbax(src):
        return _open_orbax(src, framework)
    if src.is_dir():
        root = src
        found = [(fw, src / f.single, src / f.index) for fw, f in STANDARD if _lexists(src / f.single) or _lexists(src / f.index)]
        if framework:
            found = [f for f in found if f[0] == framework]
        if not found and framework in (None, "tf"):  # a Keras 3 file (what --model tf= writes for a Keras 3 model)
            found = [("tf", p, p) for pattern in KERAS3_NAMES for p in sorted(src.glob(pattern)) if p.is_file()][:1]
        if not found and framework in (None, "flax") and orbax_dir.is_orbax(src / NNX_DIR):
            return _open_orbax(src / NNX_DIR, framework)  # the NNX variant --model flax= writes
        kinds = sorted({fw for fw, _, _ in found})
        if not found:
            names = ", ".join(sorted(p.name for p in src.iterdir())[:10]) or "nothing"
            raise InputError(src, f"no weights under a standard name (model.safetensors, pytorch_model.bin, tf_model.h5, flax_model.msgpack or their .index.json); found: {names}")
        if len(kinds) > 1:
            raise InputError(src, f"holds weights of several frameworks ({', '.join(kinds)}): pass one file, or choose with --from")
        fw, single, index = found[0]
        config_path = src / CONFIG if _lexists(src / CONFIG) else None
        files = [limits.regular_file(index if _lexists(index) else single, root)]
    else:
        root = src.parent
        files = [limits.regular_file(src)]
        if _lexists(src.parent / CONFIG) and src.name in {n for _, f in STANDARD for n in f.names}:
            config_path = src.parent / CONFIG
    config = read_config(config_path, root) if config_path else None
    model_name = tf.model_name(config)
    target = files[0]
    weight_map = None
    if target.name.endswith(".index.json"):
        weight_map = _shard_names(target, _read_json(target, "index", root).get("weight_map"))
        files = [limits.regular_file(target.parent / n, root) if _lexists(target.parent / n) else _missing(target, n)
                 for n in dict.fromkeys(weight_map.values())]
        if target.name == FILES["tf"].index:
            model_name = next(iter(weight_map)).split("/", 1)[0]
    if target.name.endswith(".weights.json"):  # Keras 3's sharded weights
        return _open_keras3_sharded(target, framework, config, config_path)
    fmts = {f: sniff(f) for f in files}
    fws = {FORMAT_FRAMEWORK[x] for x in fmts.values()}
    if len(fws) > 1:
        raise InputError(target, f"shards of several formats: {', '.join(f'{f.name} is {x}' for f, x in fmts.items())}")
    source = Source(fws.pop(), files, config, config_path)
    if framework and source.framework != framework:
        raise InputError(src, f"holds {source.framework} weights, not {framework}")
    if key and set(fmts.values()) != {"pickle"}:
        raise InputError(src, f"--key {key}: only PyTorch pickles (.bin/.pt/.ckpt) nest their state dict; this is {sorted(set(fmts.values()))[0]}")
    readers = {}
    for f, fmt in fmts.items():
        reader = readers[f] = _open_file(f, fmt, model_name, key)
        source.found = getattr(reader, "found", None) or source.found
        for name, spec in reader.infos.items():
            if name in source.infos or name in source._where:
                raise InputError(f, f"tensor {name!r} appears in more than one shard")
            if name.startswith(EXTRA + "/"):
                source.extras[name[len(EXTRA) + 1:]] = spec
            else:
                source.infos[name] = spec
            source._where[name] = reader
        for name in getattr(reader, "extras", {}) if isinstance(reader, KerasH5File) else ():
            ds = reader.extras[name]
            source.extras[name] = (tuple(ds.shape), native_dtype(ds))
            source._where[f"{EXTRA}/{name}"] = reader
        source.ties.update(getattr(reader, "ties", {}))
        if isinstance(reader, keras3_file.KerasArchive):
            source.keras = {"config": reader.config, "metadata": reader.metadata}
        meta = getattr(reader, "metadata", {}) or {}
        if TIES_KEY in meta:
            source.ties.update(limits.ties(meta[TIES_KEY], f))
    if weight_map is not None:
        _check_index(target, weight_map, readers, source.framework)
    if TIES_KEY in source.extras:
        where = source._where[f"{EXTRA}/{TIES_KEY}"]
        source.ties.update(limits.ties(np.asarray(source.load(f"{EXTRA}/{TIES_KEY}")).tobytes(), where.path))
        del source.extras[TIES_KEY]
    if not source.infos:
        raise InputError(src, "holds no tensors")
    return source


def _open_keras3_sharded(index: Path, framework: str | None, config: dict | None, config_path: Path | None) -> Source:
    if framework and framework != "tf":
        raise InputError(index, f"holds Keras 3 (tf) weights, not {framework}")
    readers = keras3_file.open_sharded(index)
    source = Source("tf", [index], config, config_path)
    for reader in readers:
        for name, spec in reader.infos.items():
            if name in source.infos:
                raise InputError(reader.path, f"tensor {name!r} appears in more than one shard")
            source.infos[name], source._where[name] = spec, reader
        for name, ds in reader.extras.items():
            source.extras[name] = (tuple(ds.shape), native_dtype(ds))
            source._where[f"{EXTRA}/{name}"] = reader
    if TIES_KEY in source.extras:
        where = source._where[f"{EXTRA}/{TIES_KEY}"]
        source.ties.update(limits.ties(np.asarray(source.load(f"{EXTRA}/{TIES_KEY}")).tobytes(), where.path))
        del source.extras[TIES_KEY]
    return source


def _open_orbax(src: Path, framework: str | None) -> Source:
    """An Orbax checkpoint folder (a Flax NNX state): read as Flax weights, RNG state left out."""
    if framework and framework != "flax":
        raise InputError(src, f"is an Orbax checkpoint (Flax), not {framework}")
    reader = orbax_dir.OrbaxDir(src)
    source = Source("flax", [src], infos=reader.infos)
    source._where = {n: reader for n in source.infos}
    if not source.infos:
        raise InputError(src, "the Orbax checkpoint holds no weights")
    return source


def use_keras3_model(source: Source, model: object) -> None:
    """Re-read a Keras 3 source with MODEL's structure: its variables' names instead of layer paths."""
    from .guided.keras3 import native_names

    readers = {id(r): r for r in source._where.values()}
    if not all(isinstance(r, keras3_file.Keras3H5File) for r in readers.values()):
        raise InputError("--model tf", "a Keras 3 model gives structure to Keras 3 weights (model.weights.h5, .keras) only")
    try:
        names = native_names(model)
    except ValueError as e:
        raise InputError("--model tf", str(e)) from None
    reader = next(iter(readers.values()))
    if source.files[0].name.endswith(".weights.json"):
        fresh_readers = keras3_file.open_sharded(source.files[0], names)
    elif isinstance(reader, keras3_file.KerasArchive):
        fresh_readers = [keras3_file.KerasArchive(reader.path, names)]
    else:
        fresh_readers = [keras3_file.Keras3H5File(reader.path, names)]
    source.infos, source.extras, source._where = {}, {}, {}
    for fresh in fresh_readers:
        source.infos.update(fresh.infos)
        source.extras.update({n: (tuple(ds.shape), native_dtype(ds)) for n, ds in fresh.extras.items() if n != TIES_KEY})
        source._where.update({**{n: fresh for n in fresh.infos}, **{f"{EXTRA}/{n}": fresh for n in fresh.extras}})


def _lexists(path: Path) -> bool:
    return os.path.lexists(path)


def _missing(index: Path, name: str):
    raise InputError(index, f"shard {name} listed in the index is missing")
