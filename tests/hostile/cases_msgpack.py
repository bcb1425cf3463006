"""Flax msgpack: lying array headers, chunked arrays whose metadata lies, odd keys, deep nesting."""
from __future__ import annotations


import msgpack
import numpy as np

from .build import B, W, arr_ext, chunked, ext, flax_tree, mp_map, pk
from .case import Case, Setup, cases

NAME = "hostile.msgpack"
KERNEL = W.T.copy()


def _tree(tree):
    def build(tmp):
        (tmp / NAME).write_bytes(pk(tree))
        return Setup(tmp / NAME)
    return build


def _raw(data: bytes):
    def build(tmp):
        (tmp / NAME).write_bytes(data)
        return Setup(tmp / NAME)
    return build


def _kernel(value) -> dict:
    tree = flax_tree()
    tree["fc"]["kernel"] = value
    return tree


def _with(**more) -> dict:
    tree = flax_tree()
    tree.update(more)
    return tree


def _deep_maps(depth: int) -> bytes:
    return b"\x81\xa1k" * depth + pk(arr_ext(B))


def _fc(*pairs) -> bytes:
    return mp_map((pk("fc"), mp_map(*pairs)))


GOOD = pk(flax_tree())
K, KB = pk("kernel"), pk(arr_ext(KERNEL))
BIAS = (pk("bias"), pk(arr_ext(B)))
HALF = KERNEL.reshape(-1)[:6].copy(), KERNEL.reshape(-1)[6:].copy()
C0, C1 = arr_ext(HALF[0]), arr_ext(HALF[1])
SHAPE = {"0": 3, "1": 4}
TIES = "tensorferry.ties"

TREES = {
    # array headers
    "shape-bool": (_kernel(ext([True, 12], "float32", KERNEL.tobytes())), NAME, []),
    "shape-negative": (_kernel(ext([-3, -4], "float32", KERNEL.tobytes())), NAME, []),
    "shape-float": (_kernel(ext([3.0, 4], "float32", KERNEL.tobytes())), NAME, []),
    "shape-string": (_kernel(ext(["3", 4], "float32", KERNEL.tobytes())), NAME, []),
    "shape-int64-overflow": (_kernel(ext([2**32, 2**32], "float32", b"")), NAME, []),
    "shape-uint64-max": (_kernel(ext([2**64 - 1], "float32", b"")), NAME, []),
    "shape-rank-100": (_kernel(ext([1] * 100, "float32", b"\0" * 4)), NAME, []),
    "shape-not-list": (_kernel(ext(12, "float32", KERNEL.tobytes())), NAME, []),
    "dtype-object": (_kernel(ext([3, 4], "object", b"\0" * 96)), NAME, []),
    "dtype-bytes-string": (_kernel(ext([3], "S4", b"abcdefghijkl")), NAME, []),
    "dtype-unicode": (_kernel(ext([3], "<U1", b"a\0\0\0b\0\0\0c\0\0\0")), NAME, []),
    "dtype-complex": (_kernel(ext([3, 2], "complex64", KERNEL.tobytes())), NAME, []),
    "dtype-unknown": (_kernel(ext([3, 4], "float1024", KERNEL.tobytes())), NAME, []),
    "dtype-datetime": (_kernel(ext([3, 4], "datetime64[s]", b"\0" * 96)), NAME, []),
    "dtype-void": (_kernel(ext([3, 4], "V4", KERNEL.tobytes())), NAME, []),
    "dtype-not-a-string": (_kernel(msgpack.ExtType(1, pk([[3, 4], b"float32", KERNEL.tobytes()]))), NAME, []),
    "bytes-too-few": (_kernel(ext([3, 4], "float32", KERNEL.tobytes()[:-4])), NAME, []),
    "ext-two-items": (_kernel(msgpack.ExtType(1, pk([[3, 4], "float32"]))), NAME, []),
    "ext-unknown-code": (_kernel(ext([3, 4], "float32", KERNEL.tobytes(), code=5)), NAME, []),
    # leaves and keys
    "leaf-int": (_kernel(7), NAME, ["fc/kernel"]),
    "leaf-string": (_kernel("weights"), NAME, ["fc/kernel"]),
    "leaf-list": (_kernel([arr_ext(KERNEL)]), NAME, ["fc/kernel"]),
    "leaf-bytes": (_kernel(KERNEL.tobytes()), NAME, ["fc/kernel"]),
    "key-slash-collision": (_with(**{"fc/kernel": arr_ext(KERNEL + 1)}), NAME, ["fc/kernel"]),
    "root-empty-map": ({}, NAME, []),
    # chunked arrays (flax splits arrays over 1 GiB): the metadata must add up
    "chunked-missing-chunk": (_kernel(chunked(SHAPE, {"0": C0, "2": C1})), NAME, ["fc/kernel"]),
    "chunked-wrong-total": (_kernel(chunked({"0": 3, "1": 5}, {"0": C0, "1": C1})), NAME, ["fc/kernel"]),
    "chunked-too-many-elements": (_kernel(chunked({"0": 2, "1": 4}, {"0": C0, "1": C1})), NAME, ["fc/kernel"]),
    "chunked-mixed-dtype": (_kernel(chunked(SHAPE, {"0": C0, "1": arr_ext(HALF[1].astype("float64"))})), NAME, ["fc/kernel"]),
    "chunked-no-shape": (_kernel({"__msgpack_chunked_array__": True, "chunks": {"0": C0, "1": C1}}), NAME, ["fc/kernel"]),
    "chunked-no-chunks": (_kernel({"__msgpack_chunked_array__": True, "shape": SHAPE}), NAME, ["fc/kernel"]),
    "chunked-empty-chunks": (_kernel(chunked(SHAPE, {})), NAME, ["fc/kernel"]),
    "chunked-shape-strings": (_kernel(chunked({"0": "3", "1": 4}, {"0": C0, "1": C1})), NAME, ["fc/kernel"]),
    "chunked-shape-bool": (_kernel(chunked({"0": True, "1": 12}, {"0": C0, "1": C1})), NAME, ["fc/kernel"]),
    "chunked-shape-gap": (_kernel(chunked({"0": 3, "2": 4}, {"0": C0, "1": C1})), NAME, ["fc/kernel"]),
    "chunked-shape-list": (_kernel(chunked([3, 4], {"0": C0, "1": C1})), NAME, ["fc/kernel"]),
    "chunked-chunk-2d": (_kernel(chunked(SHAPE, {"0": arr_ext(HALF[0].reshape(2, 3)), "1": C1})), NAME, ["fc/kernel"]),
    "chunked-chunk-not-array": (_kernel(chunked(SHAPE, {"0": C0, "1": 5})), NAME, ["fc/kernel"]),
    "chunked-chunk-is-chunked": (_kernel(chunked(SHAPE, {"0": chunked({"0": 6}, {"0": C0}), "1": C1})), NAME, ["fc/kernel"]),
    "chunked-extra-key": (_kernel(chunked(SHAPE, {"0": C0, "1": C1}, evil=1)), NAME, ["fc/kernel"]),
    "chunked-marker-false": (_kernel(chunked(SHAPE, {"0": C0, "1": C1}) | {"__msgpack_chunked_array__": False}), NAME, []),
    # tie records
    "ties-not-json": (_with(__tensorferry__={TIES: arr_ext(np.frombuffer(b"{", np.uint8))}), NAME, [TIES]),
    "ties-list": (_with(__tensorferry__={TIES: arr_ext(np.frombuffer(b"[1]", np.uint8))}), NAME, [TIES]),
    "ties-number-values": (_with(__tensorferry__={TIES: arr_ext(np.frombuffer(b'{"a": 2}', np.uint8))}), NAME, [TIES]),
    "ties-float-array": (_with(__tensorferry__={TIES: arr_ext(np.zeros(3, "float32"))}), NAME, [TIES]),
}

RAW = {
    "root-array": (pk([arr_ext(B)]), NAME, []),
    "root-int": (b"\x07", NAME, []),
    "truncated": (GOOD[:-20], NAME, ["truncated"]),
    "trailing-bytes": (GOOD + b"\xc0\xc0", NAME, ["trailing"]),
    "type-byte-c1": (GOOD[:1] + b"\xc1" + GOOD[2:], NAME, []),
    "deep-maps-100": (_deep_maps(100), NAME, ["deep"]),
    "deep-arrays-100k": (b"\x81\xa1k" + b"\x91" * 100_000 + b"\xc0", NAME, ["deep"]),
    "duplicate-key": (_fc((K, KB), (K, pk(arr_ext(KERNEL + 1))), BIAS), NAME, ["kernel"]),
    "int-and-string-key": (_fc((pk(1), KB), (pk("1"), KB), BIAS), NAME, []),
    "key-bytes": (_fc((pk(b"kernel"), KB), BIAS), NAME, []),
    "key-nil": (_fc((b"\xc0", KB), BIAS), NAME, []),
    "key-map": (_fc((pk({}), KB), BIAS), NAME, []),
    "key-not-utf8": (_fc((b"\xa2\xff\xfe", KB), BIAS), NAME, []),
    "array-count-huge": (b"\x81\xa1k\xdd\xff\xff\xff\xff", NAME, []),
    "map-count-huge": (b"\x81\xa1k\xdf\xff\xff\xff\xff", NAME, []),
    "ext-length-huge": (b"\x81\xa1k\xc9\xff\xff\xff\xff\x01\x93", NAME, []),
    "str-length-huge": (b"\x81\xdb\xff\xff\xff\xf0", NAME, []),
    "bin-length-huge": (b"\x81\xa1k\xc6\xff\xff\xff\xf0", NAME, []),
    "ext-bin-length-lies": (b"\x81\xa1k\xc7\x10\x01\x93\x91\x03\xa7float32\xc6\xff\xff\xff\xf0", NAME, []),
}

CASES: list[Case] = cases("mp", TREES, _tree) + cases("mp", RAW, _raw)
