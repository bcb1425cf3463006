"""``config.json``: not JSON, fields of the wrong type, a ``model_type`` that is a path, not a regular file."""
from __future__ import annotations

import json
import os
from pathlib import Path

from tensorferry.converters.maps.transformers import MAPS_DIR

from .build import deep_json, write_st
from .case import Case, Setup

CONFIG = "config.json"


def _config(text: str | bytes | dict):
    def build(tmp):
        root = tmp / "src"
        root.mkdir()
        write_st(root / "model.safetensors")
        raw = json.dumps(text) if isinstance(text, dict) else text
        (root / CONFIG).write_bytes(raw if isinstance(raw, bytes) else raw.encode())
        return Setup(root)
    return build


def _special(make):
    def build(tmp):
        root = tmp / "src"
        root.mkdir()
        write_st(root / "model.safetensors")
        make(tmp, root / CONFIG)
        return Setup(root)
    return build


def _outside(tmp, path):
    secret = tmp / "elsewhere" / "credentials.json"
    secret.parent.mkdir()
    secret.write_text('{"token": "SECRET-do-not-publish"}')
    path.symlink_to(secret)


def _sparse(tmp, path):
    path.write_text("{}")
    with open(path, "r+b") as fh:
        fh.truncate(200 * 2**20)


def _evil_map(tmp):
    """The regression of issue 9.2: a model_type that walks from the shipped maps to a file of the attacker's."""
    evil = tmp / "x" / "evilmap.json"
    evil.parent.mkdir()
    evil.mkdir()  # were it ever opened as a path, reading a folder would fail loudly
    rel = os.path.relpath(tmp / "x" / "evilmap", MAPS_DIR)
    return _config({"model_type": rel, "architectures": ["BertModel"]})(tmp)


def _evil_abs(tmp):
    return _config({"model_type": str(Path(tmp) / "x" / "evilmap")})(tmp)


CASES: list[Case] = [Case("config-" + key, build, CONFIG, tuple(words)) for key, build, words in [
    ("not-json", _config("{model_type"), []),
    ("array", _config("[]"), []),
    ("not-utf8", _config(b'{"model_type": "\xff"}'), []),
    ("deep-nesting", _config(deep_json()), []),
    ("deep-in-a-field", _config('{"id2label": ' + deep_json() + "}"), []),
    ("duplicate-key", _config('{"model_type": "bert", "model_type": "gpt2"}'), ["model_type"]),
    ("model-type-int", _config({"model_type": 5}), ["model_type"]),
    ("model-type-list", _config({"model_type": ["bert"]}), ["model_type"]),
    ("model-type-object", _config({"model_type": {"name": "bert"}}), ["model_type"]),
    ("model-type-bool", _config({"model_type": True}), ["model_type"]),
    ("model-type-path-traversal", _evil_map, ["model_type"]),
    ("model-type-absolute-path", _evil_abs, ["model_type"]),
    ("model-type-dotdot", _config({"model_type": ".."}), ["model_type"]),
    ("model-type-slash", _config({"model_type": "bert/../bert"}), ["model_type"]),
    ("model-type-nul", _config({"model_type": "bert\u0000"}), ["model_type"]),
    ("model-type-empty", _config({"model_type": ""}), ["model_type"]),
    ("architectures-string", _config({"architectures": "BertModel"}), ["architectures"]),
    ("architectures-ints", _config({"architectures": [1]}), ["architectures"]),
    ("architectures-null-item", _config({"architectures": [None]}), ["architectures"]),
    ("architectures-object", _config({"architectures": {"a": 1}}), ["architectures"]),
    ("architectures-nested", _config({"architectures": [["BertModel"]]}), ["architectures"]),
    ("architectures-path", _config({"architectures": ["../../evil"]}), ["architectures"]),
    ("fifo", _special(lambda tmp, p: os.mkfifo(p)), ["regular file"]),
    ("folder", _special(lambda tmp, p: p.mkdir()), ["regular file"]),
    ("symlink-outside", _special(_outside), ["outside"]),
    ("over-size-limit", _special(_sparse), ["limit"]),
]]
