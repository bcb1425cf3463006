"""Keras HDF5: data stored outside the file (external storage, virtual datasets, links), odd dtypes, lying shapes."""
from __future__ import annotations

import h5py
import numpy as np

from .build import SECRET, W, write_h5, write_other_h5
from .case import Case, Setup

NAME = "hostile.h5"


def _secret(tmp):
    path = tmp / "elsewhere" / "secret.bin"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(SECRET)
    return path


def _other(tmp):
    (tmp / "elsewhere").mkdir(exist_ok=True)
    return write_other_h5(tmp / "elsewhere" / "other.h5")


def _kernel(store):
    """Store the kernel with ``store(tmp, group, name, array)``; the bias stays ordinary."""
    def build(tmp):
        def dataset(g, name, arr):
            if name.endswith("kernel:0"):
                store(tmp, g, name, arr)
                return True
            return None
        write_h5(tmp / NAME, dataset)
        return Setup(tmp / NAME)
    return build


def _file(edit, **kw):
    """Write the good file, then ``edit(tmp, h5py.File)`` it."""
    def build(tmp):
        write_h5(tmp / NAME, **kw)
        with h5py.File(tmp / NAME, "a") as f:
            edit(tmp, f)
        return Setup(tmp / NAME)
    return build


def _external(tmp, g, name, arr):
    g.create_dataset(name, shape=(3, 4), dtype="f4", external=[(str(_secret(tmp)), 0, 48)])


def _virtual(tmp, g, name, arr):
    layout = h5py.VirtualLayout(shape=(3, 4), dtype="f4")
    layout[...] = h5py.VirtualSource(str(_other(tmp)), "data", shape=(3, 4))
    g.create_virtual_dataset(name, layout)


def _ext_link(tmp, g, name, arr):
    parent, leaf = name.rsplit("/", 1)
    g.require_group(parent)[leaf] = h5py.ExternalLink(str(_other(tmp)), "/data")


def _layer_link(tmp, f):
    del f["fc"]
    f["fc"] = h5py.ExternalLink(str(_other(tmp)), "/fc")


def _middle_link(tmp, f):
    del f["fc/model"]
    f["fc"]["model"] = h5py.ExternalLink(str(_other(tmp)), "/fc/model")


def _soft_to_external(tmp, f):
    f["ext"] = h5py.ExternalLink(str(_other(tmp)), "/fc")
    del f["fc"]
    f["fc"] = h5py.SoftLink("/ext")


def _extras_external(tmp, f):
    f.require_group("tensorferry_extras").create_dataset("fc.bias_hh", shape=(12,), dtype="f4",
                                                         external=[(str(_secret(tmp)), 0, 48)])


def _extras_link(tmp, f):
    f.require_group("tensorferry_extras")["fc.bias_hh"] = h5py.ExternalLink(str(_other(tmp)), "/data")


def _typed(dtype, data=None):
    def store(tmp, g, name, arr):
        if data is not None:
            g.create_dataset(name, data=data, dtype=dtype)
        else:
            g.create_dataset(name, shape=(3, 4), dtype=dtype)
    return store


def _refs(tmp, g, name, arr):
    ds = g.create_dataset(name, shape=(2,), dtype=h5py.ref_dtype)
    ds[0] = g.file.ref


def _sparse(shape, chunks):
    return lambda tmp, g, name, arr: g.create_dataset(name, shape=shape, dtype="f4", chunks=chunks)


def _unknown_filter(tmp, g, name, arr):
    g.create_dataset(name, data=arr, compression=32123, allow_unknown_filter=True)


def _attr(key, value):
    def edit(tmp, f):
        f.attrs[key] = value
    return edit


def _del_attr(key):
    def edit(tmp, f):
        del f.attrs[key]
    return edit


def _weight_is_group(tmp, f):
    del f["fc/model/fc/kernel:0"]
    f["fc/model/fc"].create_group("kernel:0")


def _twice(tmp, f):
    # A second layer listing the same weight name with other values: which one wins?
    g = f.create_group("fc2")
    g.attrs["weight_names"] = np.asarray([b"model/fc/kernel:0"])
    g.create_dataset("model/fc/kernel:0", data=W.T + 1)
    f.attrs["layer_names"] = np.asarray([b"fc", b"fc2"])


def _twice_by_suffix(tmp, f):
    # "kernel:0" and "kernel" both name the weight "model/fc/kernel".
    f["fc"].attrs["weight_names"] = np.asarray([b"model/fc/kernel:0", b"model/fc/bias:0", b"model/fc/kernel"])
    f["fc/model/fc"].create_dataset("kernel", data=W.T + 1)


def _extras_group(tmp, f):
    f.require_group("tensorferry_extras").create_group("nested")


def _ties(payload: bytes):
    def edit(tmp, f):
        f.require_group("tensorferry_extras").create_dataset("tensorferry.ties", data=np.frombuffer(payload, np.uint8))
    return edit


def _truncated(tmp):
    write_h5(tmp / NAME)
    data = (tmp / NAME).read_bytes()
    (tmp / NAME).write_bytes(data[:-30])
    return Setup(tmp / NAME)


def _sharded_vlen(tmp):
    with h5py.File(tmp / NAME, "w") as f:
        f.attrs["layer_names"] = np.asarray([b"fc/kernel:0"])
        f.create_dataset("fc/kernel:0", data=["a", "b"], dtype=h5py.string_dtype())
    return Setup(tmp / NAME)


CASES: list[Case] = [
    # data that lies outside the file: never read
    Case("h5-external-raw-storage", _kernel(_external), NAME, ("external",)),
    Case("h5-virtual-dataset", _kernel(_virtual), NAME, ("virtual",)),
    Case("h5-external-link-dataset", _kernel(_ext_link), NAME, ("external link",)),
    Case("h5-external-link-layer", _file(_layer_link), NAME, ("external link",)),
    Case("h5-external-link-in-path", _file(_middle_link), NAME, ("external link",)),
    Case("h5-soft-link-to-external", _file(_soft_to_external), NAME, ("external link",)),
    Case("h5-extras-external-storage", _file(_extras_external), NAME, ("external",)),
    Case("h5-extras-external-link", _file(_extras_link), NAME, ("external link",)),
    # dtypes that are not tensors
    Case("h5-vlen-string", _kernel(_typed(h5py.string_dtype(), ["a", "b", "c"])), NAME, ("model/fc/kernel",)),
    Case("h5-compound", _kernel(_typed(np.dtype([("a", "f4"), ("b", "i4")]))), NAME, ("model/fc/kernel",)),
    Case("h5-fixed-string", _kernel(_typed("S4")), NAME, ("model/fc/kernel",)),
    Case("h5-complex", _kernel(_typed("c8")), NAME, ("model/fc/kernel",)),
    Case("h5-opaque", _kernel(_typed("V4")), NAME, ("model/fc/kernel",)),
    Case("h5-references", _kernel(_refs), NAME, ("model/fc/kernel",)),
    Case("h5-sharded-vlen", _sharded_vlen, NAME, ("fc/kernel",)),
    # shapes and storage that lie
    Case("h5-4TiB-sparse", _kernel(_sparse((2**20, 2**20), (1, 1024))), NAME, ("model/fc/kernel",)),
    Case("h5-shape-over-2**62", _kernel(_sparse((2**40, 2**40), (1, 16))), NAME, ("model/fc/kernel",)),
    Case("h5-no-data-stored", _kernel(_typed("f4")), NAME, ("model/fc/kernel",)),
    Case("h5-unknown-filter", _kernel(_unknown_filter), NAME, ("model/fc/kernel", "filter")),
    Case("h5-truncated", _truncated, NAME, ()),
    # structure
    Case("h5-no-layer-names", _file(_del_attr("layer_names")), NAME, ("layer_names",)),
    Case("h5-layer-names-numbers", _file(_attr("layer_names", np.asarray([1, 2]))), NAME, ()),
    Case("h5-layer-missing", _file(_attr("layer_names", np.asarray([b"fc", b"nope"]))), NAME, ("nope",)),
    Case("h5-weight-is-group", _file(_weight_is_group), NAME, ("model/fc/kernel",)),
    Case("h5-weight-twice-other-values", _file(_twice), NAME, ("model/fc/kernel",)),
    Case("h5-weight-twice-by-suffix", _file(_twice_by_suffix), NAME, ("model/fc/kernel",)),
    Case("h5-extras-subgroup", _file(_extras_group), NAME, ("nested",)),
    Case("h5-ties-not-json", _file(_ties(b"{")), NAME, ("tensorferry.ties",)),
    Case("h5-ties-list", _file(_ties(b"[1, 2]")), NAME, ("tensorferry.ties",)),
    Case("h5-ties-number-values", _file(_ties(b'{"a": 1}')), NAME, ("tensorferry.ties",)),
]
