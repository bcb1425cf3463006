"""Finding and opening a checkpoint: a folder with standard file names, or one file of any name.

A source is read lazily and as one flat name space whatever its sharding; its format is taken
from file content, never from the file name.

>>> src = open_source("fixtures/checkpoints/cnn")
>>> src.framework, src.infos["conv.weight"]
('pt', ((8, 3, 3, 3), dtype('float32')))
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .constants import CONFIG, EXTRA, FILES, STANDARD, TIES_KEY
from .errors import InputError
from .formats.h5_file import KerasH5File
from .formats.msgpack_file import MsgpackFile
from .formats.pickle_file import PickleFile
from .selection import Found
from .formats.safetensors_file import SafetensorsFile
from .layouts import tf

FORMAT_FRAMEWORK = {"safetensors": "pt", "pickle": "pt", "h5": "tf", "msgpack": "flax"}


def sniff(path: Path) -> str:
    """The format of a weights file from its first bytes: safetensors, h5, pickle or msgpack."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
            size = fh.seek(0, 2)
    except OSError as e:
        raise InputError(path, f"cannot read: {e.strerror}") from None
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "h5"
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "pickle"
    if len(head) >= 9 and int.from_bytes(head[:8], "little") < size and head[8:9] == b"{":
        return "safetensors"
    if head[:1] and (0x80 <= head[0] <= 0x8F or head[0] in (0xDE, 0xDF)):
        return "msgpack"
    raise InputError(path, "unknown format: not safetensors, HDF5, a PyTorch pickle or a Flax msgpack file" if size else "empty file")


def _open_file(path: Path, fmt: str, model_name: str, key: str | None = None):
    if fmt == "safetensors":
        return SafetensorsFile(path)
    if fmt == "h5":
        return KerasH5File(path, model_name)
    if fmt == "msgpack":
        return MsgpackFile(path)
    return PickleFile(path, key)


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
    _where: dict[str, object] = field(default_factory=dict, repr=False)

    def load(self, name: str) -> np.ndarray:
        """One tensor by native name (``__tensorferry__/x`` for side data)."""
        reader = self._where[name]
        if name.startswith(EXTRA + "/"):
            return np.asarray(reader.load_extra(name[len(EXTRA) + 1:])) if isinstance(reader, KerasH5File) else reader.load(name)
        return reader.load(name)

    @property
    def nbytes(self) -> int:
        return sum(int(np.prod(s, dtype=np.int64)) * d.itemsize for s, d in self.infos.values())


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(path, f"not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise InputError(path, "expected a JSON object")
    return data


def open_source(src: str | Path, framework: str | None = None, key: str | None = None) -> Source:
    """Open SRC: a folder (standard names, with ``config.json``) or a single weights file.

    ``framework`` ("pt", "tf", "flax") picks one when a folder holds several; ``key`` is where
    the state dict is inside a PyTorch training checkpoint (``--key``).
    """
    src = Path(src)
    if not src.exists():
        raise InputError(src, "no such file or folder")
    config_path = None
    if src.is_dir():
        found = [(fw, src / f.single, src / f.index) for fw, f in STANDARD if (src / f.single).exists() or (src / f.index).exists()]
        if framework:
            found = [f for f in found if f[0] == framework]
        kinds = sorted({fw for fw, _, _ in found})
        if not found:
            names = ", ".join(sorted(p.name for p in src.iterdir())[:10]) or "nothing"
            raise InputError(src, f"no weights under a standard name (model.safetensors, pytorch_model.bin, tf_model.h5, flax_model.msgpack or their .index.json); found: {names}")
        if len(kinds) > 1:
            raise InputError(src, f"holds weights of several frameworks ({', '.join(kinds)}): pass one file, or choose with --from")
        fw, single, index = found[0]
        config_path = src / CONFIG if (src / CONFIG).exists() else None
        files = [index] if index.exists() else [single]
    else:
        files = [src]
        if (src.parent / CONFIG).exists() and src.name in {n for _, f in STANDARD for n in f.names}:
            config_path = src.parent / CONFIG
    config = _read_json(config_path) if config_path else None
    model_name = tf.model_name(config)
    target = files[0]
    if target.name.endswith(".index.json"):
        index = _read_json(target)
        weight_map = index.get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise InputError(target, "index without a `weight_map`")
        shard_names = list(dict.fromkeys(weight_map.values()))
        for name in shard_names:
            if "/" in name or "\\" in name or name.startswith("."):
                raise InputError(target, f"shard name {name!r} points outside the folder")
        files = [target.parent / n for n in shard_names]
        for f in files:
            if not f.exists():
                raise InputError(target, f"shard {f.name} listed in the index is missing")
        if weight_map and target.name == FILES["tf"].index:
            model_name = next(iter(weight_map)).split("/", 1)[0]
    fmts = {f: sniff(f) for f in files}
    fws = {FORMAT_FRAMEWORK[x] for x in fmts.values()}
    if len(fws) > 1:
        raise InputError(src, f"shards of several formats: {sorted(set(fmts.values()))}")
    source = Source(fws.pop(), files, config, config_path)
    if framework and source.framework != framework:
        raise InputError(src, f"holds {source.framework} weights, not {framework}")
    if key and set(fmts.values()) != {"pickle"}:
        raise InputError(src, f"--key {key}: only PyTorch pickles (.bin/.pt/.ckpt) nest their state dict; this is {sorted(set(fmts.values()))[0]}")
    for f, fmt in fmts.items():
        reader = _open_file(f, fmt, model_name, key)
        source.found = getattr(reader, "found", None) or source.found
        for name, spec in reader.infos.items():
            if name in source.infos:
                raise InputError(f, f"tensor {name!r} appears in more than one shard")
            if name.startswith(EXTRA + "/"):
                source.extras[name[len(EXTRA) + 1:]] = spec
            else:
                source.infos[name] = spec
            source._where[name] = reader
        for name in getattr(reader, "extras", {}) if isinstance(reader, KerasH5File) else ():
            source.extras[name] = (tuple(reader.extras[name].shape), reader.extras[name].dtype)
            source._where[f"{EXTRA}/{name}"] = reader
        source.ties.update(getattr(reader, "ties", {}))
        meta = getattr(reader, "metadata", {}) or {}
        if TIES_KEY in meta:
            source.ties.update(json.loads(meta[TIES_KEY]))
    if TIES_KEY in source.extras:
        source.ties.update(json.loads(source.load(f"{EXTRA}/{TIES_KEY}").tobytes()))
        del source.extras[TIES_KEY]
    if not source.infos:
        raise InputError(src, "holds no tensors")
    return source
