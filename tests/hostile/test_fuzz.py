"""Fuzz every codec: mutated corpus files (hypothesis, deterministic) and coverage-guided runs (atheris).

Either the reader parses the bytes or it raises InputError; any other exception, a crash or a hang
fails the test.  Both are bounded: hypothesis runs a fixed number of examples per codec with a fixed
seed, atheris a fixed number of runs with a fixed seed, both seeded with ``corpus/<codec>/``.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import struct
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from . import fuzz

CODECS = list(fuzz.TARGETS)
BINARY = ["safetensors", "h5", "msgpack", "pickle"]
EXAMPLES = {"safetensors": 400, "h5": 300, "msgpack": 400, "pickle": 150, "index": 300, "config": 200}
ATHERIS_RUNS = 2500


def needs(codec: str) -> None:
    if codec == "pickle" and importlib.util.find_spec("torch") is None:
        pytest.skip("reading pickles needs torch")


@st.composite
def mutated(draw, corpus: list[bytes]) -> bytes:
    """A corpus file with a few byte-level edits: set, insert, delete, truncate, duplicate a slice."""
    data = bytearray(draw(st.sampled_from(corpus)))
    for _ in range(draw(st.integers(1, 6))):
        op, i = draw(st.integers(0, 4)), draw(st.integers(0, max(len(data) - 1, 0)))
        if op == 0 and data:
            data[i] = draw(st.integers(0, 255))
        elif op == 1:
            data[i:i] = draw(st.binary(min_size=1, max_size=16))
        elif op == 2:
            del data[i:i + draw(st.integers(1, 64))]
        elif op == 3:
            del data[i:]
        else:
            data[draw(st.integers(0, len(data))):0] = data[i:i + draw(st.integers(1, 64))]
    return bytes(data)


JSON = st.recursive(st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False) | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
                    max_leaves=12)
SHARDS = st.sampled_from(["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "../x", "", ".x", "a/b"])
NAMES = st.sampled_from(["fc.weight", "fc.bias", "fc.ghost", "", "fc\x00"]) | st.text(max_size=12)
# Headers and trees shaped like the real thing with one field made hostile: what mutations of bytes rarely reach.
DIMS = st.integers(0, 4) | st.sampled_from([-1, 2**31, 2**32, 2**62, 2**63, 2**64 - 1]) | st.booleans() | st.floats(-5, 5) | st.text(max_size=2)
HOSTILE = {"shape": st.lists(DIMS, max_size=4) | JSON, "dtype": JSON | st.sampled_from(["object", "S4", "<U1", "complex64", "V4", "float1024"]),
           "offsets": st.lists(st.integers(-4, 300) | JSON, max_size=3)}
CODES = {"F32": 4, "F16": 2, "BF16": 2, "I64": 8, "U8": 1, "BOOL": 1}
FLAX = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64", "U8": "uint8", "BOOL": "bool"}


@st.composite
def tensors(draw) -> list[dict]:
    """Tensor specs (name, dtype code, shape, byte size); sometimes one field replaced by a hostile value."""
    out = []
    for _ in range(draw(st.integers(0, 4))):
        code, shape = draw(st.sampled_from(sorted(CODES))), draw(st.lists(st.integers(0, 4), max_size=3))
        spec = {"name": draw(NAMES), "code": code, "shape": shape, "size": CODES[code] * int(np.prod(shape, dtype=np.int64))}
        if draw(st.integers(0, 2)) == 0:
            field = draw(st.sampled_from(sorted(HOSTILE)))
            spec[field] = draw(HOSTILE[field])
        elif draw(st.integers(0, 2)) == 0:
            spec["shape"], spec["size"] = draw(_lying_shape(shape, spec["size"]))
        out.append(spec)
    return out


@st.composite
def _lying_shape(draw, shape: list[int], size: int):
    """A shape that still "fits" its bytes if read carelessly: strings, floats, bools, int64 wrap-around, huge rank."""
    how = draw(st.sampled_from(["disguise", "bool", "wrap", "rank"]))
    if how == "disguise":
        return [draw(st.sampled_from([str, float, int]))(d) for d in shape], size
    if how == "bool":
        return [True, *shape], size
    if how == "wrap":  # 2**32 * 2**32 wraps to 0 in int64
        return [2**32, 2**32, *shape], 0
    return [1] * draw(st.integers(33, 100)) + shape, size


@st.composite
def safetensors_files(draw) -> bytes:
    header, offset = {}, 0
    for t in draw(tensors()):
        offsets = t.get("offsets", [offset, offset + t["size"]])
        header[t["name"]] = {"dtype": t.get("dtype", t["code"]), "shape": t["shape"], "data_offsets": offsets}
        offset += t["size"]
    if draw(st.booleans()):
        header["__metadata__"] = draw(st.dictionaries(st.sampled_from(["format", "tensorferry.ties"]), st.text(max_size=8) | JSON, max_size=2))
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + draw(st.binary(min_size=max(offset - 2, 0), max_size=offset + 2))


def _flax_leaf(draw, t: dict):
    shape, name = t["shape"], t.get("dtype", FLAX[t["code"]])
    data = draw(st.binary(min_size=t["size"], max_size=t["size"] + draw(st.integers(0, 1))))
    arr = msgpack.ExtType(1, msgpack.packb([shape, name, data], use_bin_type=True))
    if not draw(st.integers(0, 3)) and isinstance(shape, list):  # a chunked array whose metadata may lie
        chunks = {str(i): arr for i in range(draw(st.integers(0, 2)))}
        return {"__msgpack_chunked_array__": True, "shape": {str(i): d for i, d in enumerate(shape)}, "chunks": chunks}
    return arr


@st.composite
def msgpack_files(draw) -> bytes:
    tree: dict = {}
    for t in draw(tensors()):
        node = tree
        parts = [p for p in t["name"].split(".") if p] or ["x"]
        for part in parts[:-1]:
            node = node.setdefault(part, {}) if isinstance(node.get(part, {}), dict) else node
        node[parts[-1]] = _flax_leaf(draw, t) if draw(st.integers(0, 5)) else draw(JSON)
    return msgpack.packb(tree, use_bin_type=True)


# Documents shaped like the real thing, with any field of any type: the JSON the parsers meet in the wild.
STRUCTURED = {
    "safetensors": safetensors_files(),
    "msgpack": msgpack_files(),
    "index": st.fixed_dictionaries({"weight_map": st.dictionaries(NAMES, SHARDS | JSON, max_size=4)},
                                   optional={"metadata": JSON}),
    "config": st.fixed_dictionaries({}, optional={"model_type": st.sampled_from(["bert", "gpt2", "tensorferry-tiny-cnn", "../x"]) | JSON,
                                                  "architectures": st.lists(st.sampled_from(["BertModel", "GPT2LMHeadModel"]) | JSON, max_size=2) | JSON}),
}


def inputs(codec: str):
    corpus = fuzz.seeds(codec)
    out = mutated(corpus) | st.binary(max_size=300)
    if codec in STRUCTURED:
        made = STRUCTURED[codec]
        out = out | (made.map(lambda doc: json.dumps(doc).encode()) if codec in ("index", "config") else made)
    return out


def test_corpus_is_committed_for_every_codec():
    for codec in CODECS:
        files = list((fuzz.CORPUS / codec).iterdir())
        assert files and all(0 < f.stat().st_size < 20_000 for f in files), codec


@pytest.mark.timeout(300)
@pytest.mark.parametrize("codec", CODECS)
def test_hypothesis_fuzz(codec):
    needs(codec)
    root = fuzz.workdir(codec)
    for seed in fuzz.seeds(codec):  # the corpus itself parses (it is the good neighbourhood mutations start from)
        fuzz.check(codec, seed, root)

    @settings(max_examples=EXAMPLES[codec], derandomize=True, database=None, deadline=timedelta(seconds=10),
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
    @given(inputs(codec))
    def run(data: bytes) -> None:
        fuzz.check(codec, data, root)

    try:
        run()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("codec", CODECS)
def test_atheris_coverage_guided_fuzz(codec, tmp_path):
    """libFuzzer over the Python code of tensorferry (instrumented), a fixed number of runs and seed."""
    needs(codec)
    if importlib.util.find_spec("atheris") is None:
        pytest.skip("atheris is not installed (the `test` extra installs it on x86_64)")
    tests = Path(__file__).parent.parent
    env = {**os.environ, "PYTHONPATH": str(tests) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-m", "hostile.fuzz", codec, f"-runs={ATHERIS_RUNS}", "-seed=1",
                           f"-artifact_prefix={tmp_path}/", "-rss_limit_mb=4096", str(tmp_path), str(fuzz.CORPUS / codec)],
                          cwd=tests, env=env, capture_output=True, text=True, timeout=540)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert f"Done {ATHERIS_RUNS} runs" in proc.stderr, proc.stderr[-2000:]
    assert not list(tmp_path.glob("crash-*")) and not list(tmp_path.glob("timeout-*"))
