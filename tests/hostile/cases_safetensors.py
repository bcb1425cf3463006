"""safetensors: hostile headers, shapes, dtypes, offsets, metadata and tie records."""
from __future__ import annotations

import json

from .build import B, W, deep_json, st_bytes, st_header
from .case import Case, Setup, cases

NAME = "hostile.safetensors"


def _entry(tensor: str = "fc.weight", **change):
    def mutate(header: dict, data: bytes):
        header[tensor] = {**header[tensor], **change}
        return header, data
    return mutate


def _only(entry: dict, data: bytes = b""):
    return lambda header, data_: ({"fc.big": entry}, data)


def _meta(value):
    def mutate(header: dict, data: bytes):
        header["__metadata__"] = value
        return header, data
    return mutate


def _raw(text: str | bytes, data: bytes | None = None, length: int | None = None):
    return lambda header, data_: (text, data_ if data is None else data, length)


def _ties(text: str):
    return _meta({"format": "pt", "tensorferry.ties": text})


def _make(mutate):
    def build(tmp):
        header, data = st_header()
        made = mutate(header, data)
        path = tmp / NAME
        path.write_bytes(st_bytes(*made))
        return Setup(path)
    return build


def _dup_header() -> str:
    # The same key twice: JSON parsers keep the last one, which would silently change the tensor.
    w = '{"dtype":"F32","shape":[4,3],"data_offsets":[0,48]}'
    w2 = '{"dtype":"F32","shape":[3,4],"data_offsets":[0,48]}'
    b = '{"dtype":"F32","shape":[4],"data_offsets":[48,64]}'
    return f'{{"fc.weight":{w},"fc.weight":{w2},"fc.bias":{b}}}'


_, DATA = st_header()
TABLE = {
    # shapes: only non-negative integers, bounded, never strings/floats/bools
    "shape-strings-floats": (_entry(shape=["4", 3.7]), NAME, ["fc.weight", "shape"]),
    "shape-floats": (_entry(shape=[4.0, 3]), NAME, ["fc.weight"]),
    "shape-bool": (_entry("fc.bias", shape=[True, 4]), NAME, ["fc.bias"]),
    "shape-negative": (_entry(shape=[-4, -3]), NAME, ["fc.weight"]),
    "shape-int64-overflow": (_only({"dtype": "F32", "shape": [2**32, 2**32], "data_offsets": [0, 0]}), NAME, ["fc.big"]),
    "shape-over-2**63": (_only({"dtype": "F32", "shape": [2**64], "data_offsets": [0, 0]}), NAME, ["fc.big"]),
    "shape-over-2**62-bytes": (_only({"dtype": "F32", "shape": [2**61, 4], "data_offsets": [0, 0]}), NAME, ["fc.big"]),
    "shape-rank-100": (_only({"dtype": "F32", "shape": [1] * 100, "data_offsets": [0, 4]}, b"\0" * 4), NAME, ["fc.big"]),
    "shape-not-list": (_entry(shape=12), NAME, ["fc.weight"]),
    "shape-null": (_entry(shape=None), NAME, ["fc.weight"]),
    "shape-nested": (_entry(shape=[[4], [3]]), NAME, ["fc.weight"]),
    "shape-object": (_entry(shape={"0": 4, "1": 3}), NAME, ["fc.weight"]),
    "shape-missing": (lambda h, d: ({**h, "fc.weight": {"dtype": "F32", "data_offsets": [0, 48]}}, d), NAME, ["fc.weight"]),
    "shape-nan": (_raw(json.dumps(st_header()[0]).replace("[4, 3]", "[NaN, 3]")), NAME, []),
    "shape-infinity": (_raw(json.dumps(st_header()[0]).replace("[4, 3]", "[Infinity, 3]")), NAME, []),
    "shape-5000-digit-int": (_raw(json.dumps(st_header()[0]).replace("[4, 3]", "[" + "9" * 5000 + ", 3]")), NAME, []),
    "shape-declared-huge": (_only({"dtype": "F32", "shape": [2**40], "data_offsets": [0, 2**42]}), NAME, ["fc.big"]),
    # dtypes
    "dtype-unknown": (_entry(dtype="F128"), NAME, ["fc.weight", "F128"]),
    "dtype-number": (_entry(dtype=5), NAME, ["fc.weight"]),
    "dtype-list": (_entry(dtype=["F32"]), NAME, ["fc.weight"]),
    "dtype-missing": (lambda h, d: ({**h, "fc.weight": {"shape": [4, 3], "data_offsets": [0, 48]}}, d), NAME, ["fc.weight"]),
    # offsets
    "offsets-strings": (_entry(data_offsets=["0", "48"]), NAME, ["fc.weight"]),
    "offsets-floats": (_entry(data_offsets=[0, 48.0]), NAME, ["fc.weight"]),
    "offsets-bools": (_entry(data_offsets=[False, 48]), NAME, ["fc.weight"]),
    "offsets-three": (_entry(data_offsets=[0, 24, 48]), NAME, ["fc.weight"]),
    "offsets-reversed": (_entry(data_offsets=[48, 0]), NAME, ["fc.weight"]),
    "offsets-negative": (_entry(data_offsets=[-48, 0]), NAME, ["fc.weight"]),
    "offsets-overlap": (_entry("fc.bias", data_offsets=[32, 48]), NAME, []),
    "offsets-past-end": (_entry(data_offsets=[10**12, 10**12 + 48]), NAME, ["fc.weight"]),
    "offsets-gap": (lambda h, d: ({**h, "fc.bias": {**h["fc.bias"], "data_offsets": [52, 68]}}, W.tobytes() + b"\0" * 4 + B.tobytes()), NAME, ["gap"]),
    "entry-not-object": (lambda h, d: ({**h, "fc.weight": [1, 2, 3]}, d), NAME, ["fc.weight"]),
    "entry-string": (lambda h, d: ({**h, "fc.weight": "F32"}, d), NAME, ["fc.weight"]),
    # header as a whole
    "header-deep-nesting": (_raw('{"fc.weight": ' + deep_json() + "}"), NAME, ["JSON"]),
    "header-deep-object": (_raw('{"a":' * 50_000 + "1" + "}" * 50_000), NAME, ["JSON"]),
    "header-array": (_raw("[]"), NAME, []),
    "header-not-utf8": (_raw(b'{"\xff\xfe": 1}'), NAME, []),
    "header-not-json": (_raw("{not json"), NAME, []),
    "header-over-limit": (_raw("{}", length=2**40), NAME, ["limit"]),
    "header-past-file": (_raw("{" + " " * 50, length=4000), NAME, []),
    "duplicate-tensor": (_raw(_dup_header(), DATA), NAME, ["fc.weight"]),
    "tensor-name-empty": (lambda h, d: ({"": h["fc.weight"], "fc.bias": h["fc.bias"]}, d), NAME, []),
    "tensor-name-control": (lambda h, d: ({"fc\u0000.weight": h["fc.weight"], "fc.bias": h["fc.bias"]}, d), NAME, []),
    "tensor-name-long": (lambda h, d: ({"w" * 100_000: h["fc.weight"], "fc.bias": h["fc.bias"]}, d), NAME, []),
    # metadata and tie records (safetensors metadata is a string → string map)
    "metadata-list": (_meta([1]), NAME, ["__metadata__"]),
    "metadata-number-values": (_meta({"format": 1}), NAME, ["__metadata__"]),
    "ties-not-json": (_ties("{"), NAME, ["tensorferry.ties"]),
    "ties-list": (_ties("[1, 2]"), NAME, ["tensorferry.ties"]),
    "ties-number-values": (_ties('{"fc.alias": 1}'), NAME, ["tensorferry.ties"]),
    "ties-deep": (_ties(deep_json()), NAME, ["tensorferry.ties"]),
    # data
    "truncated-data": (lambda h, d: (h, d[:-10]), NAME, ["truncated"]),
    "trailing-bytes": (lambda h, d: (h, d + b"hidden payload"), NAME, ["after the last tensor"]),
}

# Two source tensors that would land on one target name ("fc.weight" → fc/kernel, and a tensor
# literally named "fc/kernel"): a writer would keep one and drop the other.
COLLIDE = {"fc.weight": W, "fc.bias": B, "fc/kernel": W.T.copy()}


def _collision(tmp):
    header, data = st_header(COLLIDE)
    (tmp / NAME).write_bytes(st_bytes(header, data))
    return Setup(tmp / NAME, ["--to", "flax"])


def _collision_tf(tmp):
    setup = _collision(tmp)
    setup.args = ["--to", "tf"]
    return setup


CASES: list[Case] = cases("st", TABLE, _make) + [
    Case("st-target-name-collision-flax", _collision, "fc/kernel"),
    Case("st-target-name-collision-tf", _collision_tf, "fc/kernel"),
]
