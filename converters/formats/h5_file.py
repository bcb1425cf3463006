"""Keras-2 HDF5 weight files (``tf_model.h5``), the layout transformers 4.x and tf_keras write.

Unsharded: root attribute ``layer_names``; one group per top-level layer whose attribute
``weight_names`` lists its weights (``model_name/layer/.../kernel:0``) in Keras' load order;
datasets live at ``group/weight_name``.  Sharded (transformers): datasets named by the weight
name minus its first component, listed in the root ``layer_names``.  Long attribute lists are
split into ``name0``, ``name1``… as Keras does, because HDF5 object headers hold 64 KiB.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import h5py
import numpy as np
from h5py import h5d, h5l, h5z

from ..errors import InputError
from . import limits, raw_bytes
from .digest import FileDigest, HashingWriter

HEADER_LIMIT = 64512  # tf_keras' HDF5_OBJECT_HEADER_LIMIT
TOP_LEVEL = "top_level_model_weights"  # weights owned by the model itself, not by a layer
EXTRAS_GROUP = "tensorferry_extras"  # side data Keras never reads: it loads only `layer_names`
KERAS_VERSION = "2.21.0"


def read_attr_list(obj: h5py.HLObject, name: str) -> list[str]:
    """A string list attribute, joined from Keras' chunks when it was split."""
    if name in obj.attrs:
        values = list(obj.attrs[name])
    else:
        values, i = [], 0
        while f"{name}{i}" in obj.attrs:
            values.extend(obj.attrs[f"{name}{i}"])
            i += 1
    return [v.decode("utf8") if isinstance(v, bytes | np.bytes_) else str(v) for v in values]


def write_attr_list(obj: h5py.HLObject, name: str, values: Sequence[str]) -> None:
    """Write a string list attribute, split like Keras when it would overflow the header."""
    data = np.asarray([v.encode("utf8") for v in values]) if values else np.asarray([], dtype="S1")
    chunks = 1
    while any(c.nbytes > HEADER_LIMIT for c in np.array_split(data, chunks)):
        chunks += 1
    if chunks == 1:
        obj.attrs[name] = data
    else:
        for i, chunk in enumerate(np.array_split(data, chunks)):
            obj.attrs[f"{name}{i}"] = chunk


# Filters HDF5 and h5py build in; any other would make HDF5 load a plugin library to read the data.
FILTERS = {h5z.FILTER_DEFLATE: "gzip", h5z.FILTER_SHUFFLE: "shuffle", h5z.FILTER_FLETCHER32: "fletcher32", h5z.FILTER_LZF: "lzf"}
MAX_RATIO = 1100  # deflate cannot inflate data by more than ~1032x: a bigger declared size is a lie


class KerasH5File:
    """A Keras-2 weights file opened for lazy reading; names are weight names without ``:0``.

    Only data inside the file itself is read: a file with an external link anywhere, a virtual
    dataset or external raw storage is refused before any dataset is touched, as are datasets
    whose dtype is not a tensor's or whose declared size is more than the file can hold.

    >>> import tempfile
    >>> from tensorferry.converters import convert
    >>> out = tempfile.mkdtemp()
    >>> _ = convert("fixtures/checkpoints/cnn", out, to="tf")
    >>> f = KerasH5File(out + "/tf_model.h5")
    >>> next(iter(f.infos.items()))
    ('tf_tiny_cnn/conv/kernel', ((3, 3, 3, 8), dtype('float32')))
    """

    def __init__(self, path: str | Path, model_name: str = "model") -> None:
        self.path = limits.regular_file(path)
        self._model_name = model_name
        self._open(self.path, "not a readable HDF5 file", "corrupt Keras weights file")

    def _open(self, handle, unreadable: str, corrupt: str) -> None:
        """Open HANDLE (a path or a file object), refuse links out of the file, index the tensors."""
        try:
            self._file = h5py.File(handle, "r")
        except OSError as e:
            raise InputError(self.path, f"{unreadable} ({e})") from None
        try:
            self._refuse_links()
            self._index()
        except (KeyError, OSError, ValueError, TypeError, RuntimeError) as e:
            raise InputError(self.path, f"{corrupt} ({e})") from None

    def _refuse_links(self) -> None:
        def visit(name: bytes, info) -> tuple | None:  # returning a value stops the walk
            return None if info.type in (h5l.TYPE_HARD, h5l.TYPE_SOFT) else (name.decode("utf8", "replace"), info.type)

        bad = self._file.id.links.visit(visit, info=True)
        if bad:
            kind = "an external link" if bad[1] == h5l.TYPE_EXTERNAL else f"a link of type {bad[1]}"
            raise InputError(self.path, f"{bad[0]!r} is {kind} into another file: refused "
                                        "(external link; tensorferry reads only data inside the file)")

    def _get(self, group: h5py.Group, name: str) -> h5py.Dataset:
        obj = group.get(name)
        if obj is None:
            raise InputError(self.path, f"{group.name!r} lists weight {name!r} that is not in the file (truncated or corrupt)")
        if not isinstance(obj, h5py.Dataset):
            raise InputError(self.path, f"weight {obj.name!r} is a {type(obj).__name__}, not a dataset")
        check_dataset(self.path, obj)
        return obj

    def _add(self, key: str, ds: h5py.Dataset) -> None:
        # A weight listed under several groups (a head reusing embeddings) is one tensor, if the copies agree.
        first = self._datasets.setdefault(key, ds)
        if first.id != ds.id:
            if first.shape != ds.shape or first.dtype != ds.dtype:
                raise InputError(self.path, f"weight {self._full(key)!r} is stored twice with different shapes or dtypes ({first.name}, {ds.name})")
            self._copies.setdefault(key, []).append(ds)

    def _index(self) -> None:
        f = self._file
        if "layer_names" not in f.attrs and "layer_names0" not in f.attrs:
            raise InputError(self.path, "HDF5 file without a Keras `layer_names` attribute: not a Keras/transformers weights file")
        layer_names = read_attr_list(f, "layer_names")
        self._datasets: dict[str, h5py.Dataset] = {}
        self._copies: dict[str, list[h5py.Dataset]] = {}
        self.sharded = False
        for layer in layer_names:
            obj = f.get(layer)
            if obj is None:
                raise InputError(self.path, f"`layer_names` lists {layer!r}, which is not in the file (truncated or corrupt)")
            if isinstance(obj, h5py.Dataset):  # transformers' sharded layout
                self.sharded = True
                self._add("\0" + limits.tensor_name(layer.removesuffix(":0"), self.path), self._get(f, layer))
                continue
            for wname in read_attr_list(obj, "weight_names"):
                self._add(limits.tensor_name(wname.removesuffix(":0"), self.path), self._get(obj, wname))
        if TOP_LEVEL in f and TOP_LEVEL not in layer_names:
            for wname in read_attr_list(f[TOP_LEVEL], "weight_names"):
                self._add(limits.tensor_name(wname.removesuffix(":0"), self.path), self._get(f[TOP_LEVEL], wname))
        extras = f.get(EXTRAS_GROUP)
        if extras is not None and not isinstance(extras, h5py.Group):
            raise InputError(self.path, f"{EXTRAS_GROUP!r} is not a group")
        self.extras = {limits.tensor_name(k, self.path): self._get(extras, k) for k in extras} if extras is not None else {}

    def _full(self, key: str) -> str:
        # Sharded files drop the model-name component; put a stand-in back so names look alike.
        return f"{self._model_name}/{key[1:]}" if key.startswith("\0") else key

    @property
    def infos(self) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        """Weight name (without ``:0``) → (shape, dtype), in the file's load order."""
        return {self._full(k): (tuple(d.shape), native_dtype(d)) for k, d in self._datasets.items()}

    def dataset(self, name: str) -> h5py.Dataset:
        return self._datasets[self._key(name)]

    def _key(self, name: str) -> str:
        return name if name in self._datasets else "\0" + name.split("/", 1)[-1]

    def load(self, name: str) -> np.ndarray:
        """The weight's values; contiguous datasets are memory-mapped instead of copied."""
        key = self._key(name)
        arr = load_dataset(self.path, self._datasets[key])
        for copy in self._copies.get(key, ()):
            if not _same_bytes(arr, load_dataset(self.path, copy)):
                raise InputError(self.path, f"weight {name!r} is stored twice with different values ({self._datasets[key].name}, {copy.name})")
        return arr

    def load_extra(self, name: str) -> np.ndarray:
        return load_dataset(self.path, self.extras[name])


def _same_bytes(a: np.ndarray, b: np.ndarray, step: int = 2**26) -> bool:
    # In slices, so checking a duplicated embedding costs no second copy of it.
    a, b = (np.ascontiguousarray(x).reshape(-1).view(np.uint8) for x in (a, b))
    return a.size == b.size and all(np.array_equal(a[i:i + step], b[i:i + step]) for i in range(0, a.size, step))


def native_dtype(ds: h5py.Dataset) -> np.dtype:
    """The dataset's dtype in native byte order (big-endian files are converted on load)."""
    return ds.dtype.newbyteorder("=") if ds.dtype.byteorder not in ("=", "|") else ds.dtype


def check_dataset(path: Path, ds: h5py.Dataset, dtype: np.dtype | None = None) -> None:
    """Refuse a dataset whose data is not inside the file, whose dtype is no tensor's, or whose size lies.

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "x.h5"
    >>> with h5py.File(p, "w") as f:
    ...     _ = f.create_dataset("w", data=np.zeros(3, ">f4")), f.create_dataset("s", data=["a"])
    >>> f = h5py.File(p, "r")
    >>> check_dataset(p, f["w"]), native_dtype(f["w"]).str
    (None, '<f4')
    >>> check_dataset(p, f["s"])
    Traceback (most recent call last):
    ...
    tensorferry.converters.errors.InputError: ...x.h5: dataset '/s' has dtype object (|O): not a numeric tensor type ...
    """
    what = f"dataset {ds.name!r}"
    dcpl = ds.id.get_create_plist()
    if dcpl.get_layout() == h5d.VIRTUAL:
        raise InputError(path, f"{what} is a virtual dataset: its data lives in other files (refused)")
    if dcpl.get_external_count():
        name = dcpl.get_external(0)[0].decode("utf8", "replace")
        raise InputError(path, f"{what} uses external raw storage in {name!r}: its data lives outside the file (refused)")
    dtype = ds.dtype if dtype is None else dtype  # Keras 3 stores bfloat16 as 2-byte opaque data
    limits.tensor_dtype(dtype, path, what)
    nbytes = limits.nbytes(limits.shape(ds.shape, path, what), dtype, path, what)
    filters = [dcpl.get_filter(i)[0] for i in range(dcpl.get_nfilters())]
    unknown = [c for c in filters if c not in FILTERS]
    if unknown:
        raise InputError(path, f"{what} needs HDF5 filter {unknown[0]}, which tensorferry does not read (only {', '.join(FILTERS.values())})")
    if nbytes == 0:
        return
    stored = ds.id.get_storage_size()
    if stored == 0 or (not filters and stored < nbytes) or nbytes > MAX_RATIO * stored:
        raise InputError(path, f"{what} declares {nbytes} bytes but the file stores {stored} of them (sparse, missing or lying data)")
    offset = ds.id.get_offset()
    if offset is not None and offset + nbytes > path.stat().st_size:
        raise InputError(path, f"{what} points past the end of the file (truncated?)")


def load_dataset(path: Path, ds: h5py.Dataset) -> np.ndarray:
    """Read a dataset; an unfiltered contiguous one becomes an mmap view (no anonymous memory)."""
    native = native_dtype(ds)
    offset = ds.id.get_offset()
    try:
        if offset is not None and ds.chunks is None and ds.compression is None and ds.size > 0:
            arr = np.memmap(path, dtype=ds.dtype, mode="r", offset=offset, shape=ds.shape)
        else:
            arr = ds[()] if ds.shape == () else ds[...]
    except (ValueError, OSError) as e:
        raise InputError(path, f"cannot read dataset {ds.name!r} (truncated or corrupt): {e}") from None
    except MemoryError:
        raise InputError(path, f"dataset {ds.name!r} of {ds.nbytes} bytes does not fit in memory") from None
    return arr if arr.dtype == native else np.asarray(arr).astype(native)


def write(
    path: str | Path,
    layers: Sequence[tuple[str, Sequence[str]]],
    specs: dict[str, tuple[tuple[int, ...], np.dtype]],
    produce: Callable[[str], np.ndarray],
    extras: dict[str, np.ndarray] | None = None,
    sharded: bool = False,
    digest: bool = True,
) -> FileDigest:
    """Write weights in the Keras-2 layout (or transformers' sharded layout when ``sharded``).

    ``layers`` lists top-level layer groups in model order with their weight names (no ``:0``,
    first component = model name) in Keras load order; a layer may have no weights.  Weights
    of the model itself go in the group ``top_level_model_weights``.

    h5py lays out the file from the specs alone (every dataset contiguous, its space allocated at
    creation and never filled); then each tensor is written straight to its place, in file order
    (``order``), so the sha256 of the whole file is computed on the way (``digest``) and no byte is
    written twice.

    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "tf_model.h5")
    >>> spec = {"m/dense/kernel": ((2, 3), np.dtype("float32"))}
    >>> d = write(p, [("dense", ["m/dense/kernel"])], spec, lambda n: np.ones((2, 3), "float32"))
    >>> KerasH5File(p).load("m/dense/kernel").sum(), d.size == os.path.getsize(p)
    (np.float32(6.0), True)
    """
    regions: list[tuple[int, str]] = []  # (file offset, weight name) of every dataset written afterwards

    def dataset(group: h5py.Group, name: str, weight: str) -> None:
        shape, dt = specs[weight]
        ds = group.create_dataset(name, shape=shape, dtype=dt, dcpl=_contiguous_unfilled())
        offset = ds.id.get_offset()
        if offset is None:  # scalars and empty tensors get no separate data block: write them now
            if int(np.prod(shape, dtype=np.int64)):
                ds[()] = _checked(weight, spec=specs[weight], arr=produce(weight))
        else:
            regions.append((offset, weight))

    _probe_size(Path(path), specs)
    with h5py.File(path, "w") as f:
        if sharded:
            names = sorted(n for _, ws in layers for n in ws)
            for name in names:
                dataset(f, name.split("/", 1)[-1] + ":0", name)
            write_attr_list(f, "layer_names", [n.split("/", 1)[-1] + ":0" for n in names])
        else:
            write_attr_list(f, "layer_names", [layer for layer, _ in layers if layer != TOP_LEVEL])
            f.attrs["backend"] = b"tensorflow"
            f.attrs["keras_version"] = KERAS_VERSION.encode()
            if TOP_LEVEL not in dict(layers):
                layers = [*layers, (TOP_LEVEL, [])]
            for layer, weights in layers:
                g = f.create_group(layer)
                write_attr_list(g, "weight_names", [w + ":0" for w in weights])
                for w in weights:
                    dataset(g, w + ":0", w)
        if extras:
            g = f.create_group(EXTRAS_GROUP)
            for name, arr in extras.items():
                g.create_dataset(name, data=arr)
    return _fill(Path(path), sorted(regions), specs, produce, digest)


def _probe_size(path: Path, specs: dict[str, tuple[tuple[int, ...], np.dtype]]) -> None:
    """Grow PATH (sparse) to about the file's final size first: a file-size limit then fails here, in
    Python.  HDF5 does not survive a failed write: it crashes the process at exit."""
    estimate = (1 << 16) + sum(4096 + int(np.prod(shape, dtype=np.int64)) * dt.itemsize for shape, dt in specs.values())
    with open(path, "wb") as fh:
        os.ftruncate(fh.fileno(), estimate)


def _contiguous_unfilled() -> h5py.h5p.PropDCID:
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_layout(h5py.h5d.CONTIGUOUS)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
    return dcpl


def _fill(path: Path, regions: list[tuple[int, str]], specs: dict, produce: Callable[[str], np.ndarray],
          digest: bool) -> FileDigest:
    """Write each tensor at its dataset's offset, in file order, hashing the metadata between them."""
    with open(path, "r+b", buffering=0) as fh:
        if not digest:
            for offset, name in regions:
                fh.seek(offset)
                fh.write(raw_bytes(_checked(name, specs[name], produce(name))))
            return FileDigest(fh.seek(0, 2), None, b"")
        out = HashingWriter(fh)
        for offset, name in regions:
            if offset > out.size:  # h5py's own metadata: small, read back only to hash it
                fh.seek(out.size)
                out.update(fh.read(offset - out.size))
            fh.seek(offset)
            out.write(raw_bytes(_checked(name, specs[name], produce(name))))
        fh.seek(out.size)
        while block := fh.read(1 << 20):
            out.update(block)
    return out.digest()


def order(layers: Sequence[tuple[str, Sequence[str]]], specs: dict[str, tuple[tuple[int, ...], np.dtype]],
          sharded: bool = False) -> list[str]:
    """The order in which ``write`` asks for the tensors: scalars while laying out, then file order.

    >>> f32 = np.dtype("float32")
    >>> order([("a", ["m/a/w", "m/a/s"]), ("b", ["m/b/w"])], {"m/a/w": ((2,), f32), "m/a/s": ((), f32), "m/b/w": ((3,), f32)})
    ['m/a/s', 'm/a/w', 'm/b/w']
    """
    created = sorted(n for _, ws in layers for n in ws) if sharded else [w for _, ws in layers for w in ws]
    sizes = {n: int(np.prod(specs[n][0], dtype=np.int64)) for n in created}
    return [n for n in created if specs[n][0] == () and sizes[n]] + [n for n in created if specs[n][0] != () and sizes[n]]


def _checked(name: str, spec: tuple[tuple[int, ...], np.dtype], arr: np.ndarray) -> np.ndarray:
    shape, dt = spec
    if tuple(arr.shape) != tuple(shape) or arr.dtype != dt:
        raise AssertionError(f"{name}: planned {shape} {dt}, produced {arr.shape} {arr.dtype}")
    return arr
