"""Arguments, SRC paths that are not regular files, and OUT folders that cannot take the output."""
from __future__ import annotations

import json
import os
import socket

from .build import deep_json, write_st
from .case import Case, Setup


def _good(tmp):
    root = tmp / "src"
    root.mkdir()
    write_st(root / "model.safetensors")
    return root


def _args(*args: str):
    return lambda tmp: Setup(_good(tmp), list(args))


def _layout_map(content: str | dict | None = None, special=None):
    def build(tmp):
        path = tmp / "map.json"
        if special:
            special(path)
        else:
            path.write_text(content if isinstance(content, str) else json.dumps(content))
        return Setup(_good(tmp), ["--layout-map", str(path)])
    return build


def _sparse(path):
    path.write_text("{}")
    with open(path, "r+b") as fh:
        fh.truncate(200 * 2**20)


def _out(make):
    def build(tmp):
        return Setup(_good(tmp), out=make(tmp))
    return build


def _out_file(tmp):
    (tmp / "out").write_text("not a folder")
    return tmp / "out"


def _parent_file(tmp):
    (tmp / "plain").write_text("a file")
    return tmp / "plain" / "out"


def _final_is_folder(name: str):
    def make(tmp):
        (tmp / "out" / name).mkdir(parents=True)
        (tmp / "out" / name / "keep.txt").write_text("mine")
        return tmp / "out"
    return make


def _config_too(tmp):
    root = _good(tmp)
    (root / "config.json").write_text("{}")
    (tmp / "out" / "config.json").mkdir(parents=True)
    return Setup(root, out=tmp / "out")


def _src(make):
    def build(tmp):
        return Setup(make(tmp))
    return build


def _fifo_file(tmp):
    os.mkfifo(tmp / "weights.safetensors")
    return tmp / "weights.safetensors"


def _in_folder(special):
    def make(tmp):
        root = tmp / "src"
        root.mkdir()
        special(tmp, root / "model.safetensors")
        return root
    return make


def _socket(tmp, path):
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.close()


def _outside(tmp, path):
    (tmp / "elsewhere").mkdir()
    write_st(tmp / "elsewhere" / "private.safetensors")
    path.symlink_to(tmp / "elsewhere" / "private.safetensors")


def _empty_folder(tmp):
    (tmp / "src").mkdir()
    return tmp / "src"


def _empty_file(tmp):
    (tmp / "w.safetensors").write_bytes(b"")
    return tmp / "w.safetensors"


CASES: list[Case] = [Case("cli-" + key, build, names, tuple(words)) for key, build, names, words in [
    # --kind: a regex and a known kind
    ("kind-bad-regex", _args("--kind", "(fc=linear"), "--kind", []),
    ("kind-unknown-kind", _args("--kind", "fc=wibble"), "--kind", ["wibble"]),
    ("kind-no-equals", _args("--kind", "fc"), "--kind", []),
    ("kind-empty-kind", _args("--kind", "fc="), "--kind", []),
    ("kind-bad-multiplier", _args("--kind", "fc=depthwise:x"), "--kind", []),
    ("kind-zero-multiplier", _args("--kind", "fc=depthwise:0"), "--kind", []),
    # --dtype: floating types only (an integer cast would truncate weights)
    ("dtype-int8", _args("--dtype", "int8"), "--dtype", ["int8"]),
    ("dtype-uint8", _args("--dtype", "uint8"), "--dtype", []),
    ("dtype-int64", _args("--dtype", "int64"), "--dtype", []),
    ("dtype-bool", _args("--dtype", "bool"), "--dtype", []),
    ("dtype-complex", _args("--dtype", "complex64"), "--dtype", []),
    ("dtype-float8", _args("--dtype", "float8_e4m3fn"), "--dtype", []),
    ("dtype-object", _args("--dtype", "O"), "--dtype", []),
    ("dtype-string", _args("--dtype", "S4"), "--dtype", []),
    ("dtype-nonsense", _args("--dtype", "float33"), "--dtype", []),
    # other options
    ("max-shard-size-unit", _args("--max-shard-size", "5XB"), "--max-shard-size", []),
    ("max-shard-size-negative", _args("--max-shard-size", "-1GB"), "--max-shard-size", []),
    ("to-unknown", _args("--to", "tf,onnx"), "--to", ["onnx"]),
    ("to-empty", _args("--to", ","), "--to", []),
    ("from-unknown", _args("--from", "onnx"), "--from", []),
    ("unknown-option", _args("--frobnicate"), "--frobnicate", []),
    # --layout-map: a file the user names, still untrusted
    ("layout-map-missing", lambda tmp: Setup(_good(tmp), ["--layout-map", str(tmp / "nope.json")]), "nope.json", []),
    ("layout-map-fifo", _layout_map(special=os.mkfifo), "map.json", ["regular file"]),
    ("layout-map-folder", _layout_map(special=lambda p: p.mkdir()), "map.json", ["regular file"]),
    ("layout-map-over-limit", _layout_map(special=_sparse), "map.json", ["limit"]),
    ("layout-map-not-json", _layout_map("{kinds"), "map.json", []),
    ("layout-map-deep", _layout_map(deep_json()), "map.json", []),
    ("layout-map-kinds-list", _layout_map({"kinds": ["linear"]}), "map.json", ["kinds"]),
    ("layout-map-bad-regex", _layout_map({"kinds": {"(fc": "linear"}}), "map.json", ["(fc"]),
    ("layout-map-unknown-kind", _layout_map({"kinds": {"fc": "wibble"}}), "map.json", ["wibble"]),
    ("layout-map-kind-number", _layout_map({"kinds": {"fc": 5}}), "map.json", ["fc"]),
    ("layout-map-order-string", _layout_map({"kinds": {}, "order": "fc"}), "map.json", ["order"]),
    ("layout-map-order-bad-regex", _layout_map({"kinds": {}, "order": ["(fc"]}), "map.json", ["order"]),
    # OUT that cannot take the files
    ("out-is-a-file", _out(_out_file), "out", []),
    ("out-parent-is-a-file", _out(_parent_file), "plain", []),
    ("out-weights-name-is-a-folder", _out(_final_is_folder("model.safetensors")), "model.safetensors", ["folder"]),
    ("out-h5-name-is-a-folder", _out(_final_is_folder("tf_model.h5")), "tf_model.h5", ["folder"]),
    ("out-config-name-is-a-folder", _config_too, "config.json", ["folder"]),
    # SRC that is not a regular file (a FIFO would block forever)
    ("src-missing", _src(lambda tmp: tmp / "nope"), "nope", []),
    ("src-fifo", _src(_fifo_file), "weights.safetensors", ["regular file"]),
    ("src-char-device", lambda tmp: Setup("/dev/zero"), "/dev/zero", ["regular file"]),
    ("src-folder-weights-fifo", _src(_in_folder(lambda tmp, p: os.mkfifo(p))), "model.safetensors", ["regular file"]),
    ("src-folder-weights-socket", _src(_in_folder(_socket)), "model.safetensors", ["regular file"]),
    ("src-folder-weights-folder", _src(_in_folder(lambda tmp, p: p.mkdir())), "model.safetensors", ["regular file"]),
    ("src-folder-weights-symlink-outside", _src(_in_folder(_outside)), "model.safetensors", ["outside"]),
    ("src-empty-folder", _src(_empty_folder), "src", []),
    ("src-empty-file", _src(_empty_file), "w.safetensors", ["empty"]),
]]
