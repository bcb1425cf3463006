"""Keras 3 weights: ``model.weights.h5`` (``keras/src/saving/saving_lib.py``) and ``.keras`` archives.

The file is groups of numbered variables, ``<layer path>/vars/<i>``; a group's ``vars`` has the
layer's name as attribute ``name``; bfloat16 datasets are 2-byte opaque data with attribute
``dtype="bfloat16"``.  Writing lays the file out from the specs (contiguous, unfilled datasets)
and streams each tensor to its place, as ``h5_file`` does.  Reading names each dataset the
Keras-2 way (``layouts.keras3_names``) so the TF layout rules turn it into canonical tensors.

A ``.keras`` archive is a zip of ``config.json``, ``metadata.json`` and ``model.weights.h5``;
members are read by those exact names, never extracted, so no archive path is ever used as one.

>>> import tempfile, os
>>> p = os.path.join(tempfile.mkdtemp(), "model.weights.h5")
>>> spec = {"layers/dense/vars/0": ((2, 3), np.dtype("float32"))}
>>> _ = write(p, [("", {"name": "m"}), ("layers/dense", {"name": "fc"})], spec, lambda n: np.ones((2, 3), "float32"))
>>> f = Keras3H5File(p); list(f.infos), float(f.load("dense/kernel").sum())
(['dense/kernel'], 6.0)
"""
from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import h5py
import numpy as np

from .. import dtypes
from ..errors import InputError
from ..layouts import keras3_names as names_
from . import limits
from .digest import FileDigest
from .h5_file import EXTRAS_GROUP, KerasH5File, _contiguous_unfilled, _fill, _probe_size, check_dataset, load_dataset, native_dtype

BF16 = "bfloat16"
WEIGHTS, CONFIG, METADATA = "model.weights.h5", "config.json", "metadata.json"
INDEX = "model.weights.json"  # sharded: this index and model_00000.weights.h5, model_00001.weights.h5, …
SHARD = re.compile(r"[^./\\\x00-\x1f][^/\\\x00-\x1f]*\.weights\.h5")  # a plain file name in the index's folder
MAX_JSON = 64 << 20  # a config larger than this is not a model config


def is_keras3(f: h5py.File) -> bool:
    """A Keras 3 weights file: ``vars``/``layers`` groups and no Keras-2 ``layer_names``."""
    return "layer_names" not in f.attrs and "layer_names0" not in f.attrs and ("vars" in f or "layers" in f)


def write(path: str | Path, groups: Sequence[tuple[str, dict]], specs: dict[str, tuple[tuple[int, ...], np.dtype]],
          produce: Callable[[str], np.ndarray], extras: dict[str, np.ndarray] | None = None, digest: bool = True) -> FileDigest:
    """Write ``specs`` (dataset path → shape, dtype, in Keras' order) under the GROUPS (path, attributes)."""
    regions: list[tuple[int, str]] = []
    _probe_size(Path(path), specs)
    with h5py.File(path, "w") as f:
        for group, attrs in groups:
            g = f.create_group(f"{group}/vars" if group else "vars")
            for k, v in attrs.items():
                g.attrs[k] = v
        for name, (shape, dt) in specs.items():
            bf16 = dt.name == BF16
            ds = f.create_dataset(name, shape=shape, dtype=np.dtype("V2") if bf16 else dt, dcpl=_contiguous_unfilled())
            if bf16:
                ds.attrs["dtype"] = BF16
            offset = ds.id.get_offset()
            if offset is None:
                if int(np.prod(shape, dtype=np.int64)):
                    ds[()] = np.asarray(produce(name)).view(ds.dtype) if bf16 else produce(name)
            else:
                regions.append((offset, name))
        if extras:
            g = f.create_group(EXTRAS_GROUP)
            for name, arr in extras.items():
                g.create_dataset(name, data=arr)
    return _fill(Path(path), sorted(regions), specs, produce, digest)


def shard_plan(specs: dict[str, tuple[tuple[int, ...], np.dtype]], groups: list[tuple[str, dict]], made_at: list[int],
               max_bytes: int) -> tuple[list[int], list[int]]:
    """Keras' ``ShardedH5IOStore`` rule: (shard of each dataset, shard of each group).

    A tensor goes to the current shard unless that makes the shard larger than ``max_bytes``
    (then a new shard starts with it); a group lands in the shard current when Keras made it.

    >>> f4 = np.dtype("float32")
    >>> shard_plan({"a": ((4,), f4), "b": ((4,), f4), "c": ((4,), f4)}, [("x", {}), ("y", {})], [0, 2], 32)
    ([0, 0, 1], [0, 0])
    """
    shard, current, of_data = 0, 0, []
    for shape, dt in specs.values():
        size = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        current += size
        if current > max_bytes:
            shard, current = shard + 1, size
        of_data.append(shard)
    return of_data, [of_data[k - 1] if k else 0 for k in made_at]


def shard_name(i: int) -> str:
    """Keras' name of shard I (0-based): ``model_00000.weights.h5``."""
    return f"model_{i:05}.weights.h5"


def order(specs: dict[str, tuple[tuple[int, ...], np.dtype]]) -> list[str]:
    """The order in which ``write`` asks for tensors: scalars while laying out, then file order."""
    sized = [n for n, (s, _) in specs.items() if int(np.prod(s, dtype=np.int64))]
    return [n for n in sized if specs[n][0] == ()] + [n for n in sized if specs[n][0] != ()]


class Keras3H5File(KerasH5File):
    """A Keras 3 weights file (or the one inside a ``.keras`` archive) opened for lazy reading.

    ``names``: dataset path → weight name, from a Keras 3 model given as structure
    (``guided.keras3.native_names``); without it names come from layer paths and classes.
    """

    def __init__(self, path: str | Path, names: dict[str, str] | None = None, member=None, shard: bool = False) -> None:
        self._given = names
        self._member = member
        self._shared: dict[str, str] | None = {} if shard else None  # a shard: every shard's layer names, once known
        if member is None:
            super().__init__(path)
            return
        self.path, self._model_name = Path(path), "model"
        self._open(member, f"{WEIGHTS} in the archive is not a readable HDF5 file", "corrupt Keras weights")

    def _index(self) -> None:
        f = self._file
        if not is_keras3(f) and self._shared is None:  # a shard may hold only a subclassed model's attribute groups
            raise InputError(self.path, "HDF5 file without Keras 3 `vars`/`layers` groups: not a Keras 3 weights file")
        found: list[str] = []
        groups: dict[str, str] = {}

        def visit(name: str, obj) -> None:
            if name.split("/", 1)[0] == EXTRAS_GROUP:
                return
            if isinstance(obj, h5py.Group) and (name == "vars" or name.endswith("/vars")):
                raw = obj.attrs.get("name", "")
                groups[name.removesuffix("vars").rstrip("/")] = raw.decode() if isinstance(raw, bytes) else str(raw)
            elif isinstance(obj, h5py.Dataset):
                found.append(name)

        f.visititems(visit)
        self.groups = dict(groups)
        groups = {**groups, **(self._shared or {})}
        for d in found:  # every dataset is a numbered variable of a layer's `vars`
            parent, _, index = d.rpartition("/")
            if not index.isdigit() or not (parent == "vars" or parent.endswith("/vars")):
                raise InputError(self.path, f"dataset {d!r} is not a Keras variable (<layer>/vars/<i>)")
        counts: dict[str, int] = {}
        for d in found:
            counts[names_.split(d)[0]] = counts.get(names_.split(d)[0], 0) + 1
        self._datasets, self._copies, self._paths, self.sharded = {}, {}, {}, False
        self._bf16: set[str] = set()
        for d in sorted(found, key=lambda d: (names_.split(d)[0], names_.split(d)[1])):
            if self._given is not None:
                if d not in self._given:
                    raise InputError(self.path, f"dataset {d!r} is no variable of the given Keras model: not this model's weights")
                name = self._given[d]
            else:
                name = names_.native_name(d, groups, count=counts[names_.split(d)[0]])
            ds = f[d]
            marked = ds.attrs.get("dtype", "") in (BF16, BF16.encode())
            if marked and (ds.dtype.kind != "V" or ds.dtype.itemsize != 2):
                raise InputError(self.path, f"dataset {d!r} is marked bfloat16 but stores {ds.dtype}")
            check_dataset(self.path, ds, dtypes.from_name(BF16) if marked else None)
            key = limits.tensor_name(name, self.path)
            if key in self._datasets:
                raise InputError(self.path, f"datasets {self._paths[key]!r} and {d!r} both read as {key!r}: give the Keras model (--model tf=…)")
            self._datasets[key], self._paths[key] = ds, d
            if marked:
                self._bf16.add(key)
        missing = sorted(set(self._given or ()) - set(self._paths.values()))
        if missing and self._shared is None:
            raise InputError(self.path, f"the given Keras model has variables the file lacks: {', '.join(missing[:4])}")
        extras = f.get(EXTRAS_GROUP)
        self.extras = {limits.tensor_name(k, self.path): self._get(extras, k) for k in extras} if isinstance(extras, h5py.Group) else {}

    def reindex(self, groups: dict[str, str]) -> None:
        """Name the datasets again knowing every shard's layer names (a group's attributes live in one shard)."""
        self._shared = groups
        self._index()

    @property
    def infos(self) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        return {k: (tuple(d.shape), dtypes.from_name(BF16) if k in self._bf16 else native_dtype(d)) for k, d in self._datasets.items()}

    def load(self, name: str) -> np.ndarray:
        ds = self._datasets[name]
        arr = ds[...] if self._member is not None else load_dataset(self.path, ds)
        return arr.view(dtypes.from_name(BF16)) if name in self._bf16 else arr

    def load_extra(self, name: str) -> np.ndarray:
        ds = self.extras[name]
        return ds[...] if self._member is not None else load_dataset(self.path, ds)


def is_archive(path: Path) -> bool:
    """Whether PATH is a zip holding ``model.weights.h5`` and ``config.json`` (a ``.keras`` archive)."""
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
    except Exception:  # noqa: BLE001 - any zip zipfile cannot list is not a .keras archive (the pickle reader says why)
        return False
    return WEIGHTS in names and CONFIG in names


class KerasArchive(Keras3H5File):
    """A ``.keras`` archive: its weights read in place from the zip, its config and metadata kept to report."""

    def __init__(self, path: str | Path, names: dict[str, str] | None = None) -> None:
        path = limits.regular_file(path)
        try:
            self._zip = zipfile.ZipFile(path)
            infos = {i.filename: i for i in self._zip.infolist()}
        except (zipfile.BadZipFile, OSError) as e:
            raise InputError(path, f"not a readable .keras archive ({e})") from None
        for name in (WEIGHTS, CONFIG):
            if name not in infos:
                raise InputError(path, f"a .keras archive without {name}")
        self.config = self._json(path, infos, CONFIG)
        self.metadata = self._json(path, infos, METADATA) if METADATA in infos else {}
        super().__init__(path, names, member=self._zip.open(infos[WEIGHTS]))

    def _json(self, path: Path, infos: dict, name: str) -> dict:
        info = infos[name]
        if info.file_size > MAX_JSON:
            raise InputError(path, f"{name} in the archive declares {info.file_size} bytes: too large for a model config")
        with self._zip.open(info) as fh:
            data = fh.read(MAX_JSON + 1)
        if len(data) > MAX_JSON:
            raise InputError(path, f"{name} in the archive is larger than it declares")
        try:
            value = json.loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            raise InputError(path, f"{name} in the archive is not JSON ({e})") from None
        if not isinstance(value, dict):
            raise InputError(path, f"{name} in the archive is not a JSON object")
        return value


def open_sharded(index: Path, names: dict[str, str] | None = None) -> list[Keras3H5File]:
    """The shards a Keras 3 ``*.weights.json`` lists (plain names in its folder), named with all shards' layer names."""
    data = limits.read_json(index, "Keras 3 shard index", index.parent)
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise InputError(index, "a Keras 3 shard index without a `weight_map` object")
    shards: dict[str, None] = {}
    for group, files in weight_map.items():
        for name in files if isinstance(files, list) else [files]:
            if not isinstance(name, str) or not SHARD.fullmatch(name):
                raise InputError(index, f"`weight_map` gives {group!r} the shard {name!r}, not a .weights.h5 file in the index's folder")
            shards[name] = None
    readers = [Keras3H5File(limits.regular_file(index.parent / name, index.parent), names, shard=True) for name in shards]
    groups: dict[str, str] = {}
    for r in readers:
        groups.update({k: v for k, v in r.groups.items() if v})
    for r in readers:
        r.reindex(groups)
    if names is not None:
        held = {p for r in readers for p in r._paths.values()}
        missing = sorted(set(names) - held)
        if missing:
            raise InputError(index, f"the given Keras model has variables the shards lack: {', '.join(missing[:4])}")
    return readers
