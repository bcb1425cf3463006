"""The pipeline writes every target at once and the same bytes as ever; each codec asks for tensors in its order."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from tensorferry.converters import convert
from tensorferry.converters.formats import h5_file, msgpack_file, safetensors_file
from tensorferry.fixtures import FAMILIES, checkpoint_dir

GOLDEN = Path(__file__).parent / "data" / "fixture_outputs.sha256.json"


def test_every_file_is_byte_for_byte_what_the_one_target_at_a_time_pipeline_wrote(tmp_path) -> None:
    """sha256 of every file, recorded from the sequential pipeline before writers ran at once: all
    directions (PT → all, TF → all, Flax → all), one file and sharded, for every fixture family.

    The h5 hashes depend on the HDF5 library h5py ships (pinned ``h5py<3.15``): moving the pin means
    recording them again, after checking the files still load."""
    want = json.loads(GOLDEN.read_text())
    got = {}
    for family in sorted(FAMILIES):
        for shard in ("5GB", "20KB"):
            root = tmp_path / family / shard
            convert(checkpoint_dir(family), root / "all", to=["pt", "tf", "flax"], max_shard_size=shard)
            for fw in ("tf", "flax"):
                convert(checkpoint_dir(family), root / f"only-{fw}", to=[fw])
                convert(root / f"only-{fw}", root / f"from-{fw}", to=["pt", "tf", "flax"], max_shard_size=shard)
            for f in sorted(root.rglob("*")):
                if f.is_file():
                    got[f"{family}/{shard}/{f.relative_to(root)}"] = hashlib.sha256(f.read_bytes()).hexdigest()
    assert len(got) == len(want) == 141
    assert got == want


def _recording(specs):
    calls = []

    def produce(name):
        calls.append(name)
        return np.ones(specs[name][0], specs[name][1])
    return calls, produce


def test_each_codec_asks_for_tensors_in_the_order_it_announces(tmp_path) -> None:
    """The shared tensor store computes the next tensor ahead from these orders."""
    f32 = np.dtype("float32")
    specs = {"m/b/w": ((3, 4), f32), "m/a/s": ((), f32), "m/a/w": ((2,), f32), "m/b/e": ((0, 3), f32), "m/a/v": ((1,), f32)}
    layers = [("b", ["m/b/w", "m/b/e"]), ("a", ["m/a/s", "m/a/w", "m/a/v"])]
    for sharded in (False, True):
        calls, produce = _recording(specs)
        h5_file.write(tmp_path / f"h5-{sharded}.h5", layers, specs, produce, sharded=sharded)
        assert calls == h5_file.order(layers, specs, sharded)
    listed = [(n, s, d) for n, (s, d) in specs.items()]
    calls, produce = _recording(specs)
    msgpack_file.write(tmp_path / "f.msgpack", listed, produce)
    assert calls == msgpack_file.order(listed) and calls != list(specs)  # grouped by path, not as listed
    calls, produce = _recording(specs)
    safetensors_file.write(tmp_path / "f.safetensors", listed, produce)
    assert calls == list(specs)


def test_a_failing_writer_stops_the_others_and_leaves_nothing(tmp_path, monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    from tensorferry.converters.errors import InputError

    monkeypatch.setattr(msgpack_file, "write", broken)  # our own writer fails, as on a full disk
    with pytest.raises(InputError, match="No space left"):
        convert(checkpoint_dir("transformer"), tmp_path / "out", to=["pt", "tf", "flax"])
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_ctrl_c_stops_every_writer_and_leaves_nothing(tmp_path) -> None:
    """SIGINT mid-conversion: the writers stop at their next tensor, the process exits 130, no file remains."""
    import os
    import signal
    import subprocess
    import sys
    import time

    specs = [(f"layers.{i}.weight", (1024, 1024), np.dtype("float32")) for i in range(64)]  # 256 MiB
    safetensors_file.write(tmp_path / "model.safetensors", specs, lambda n: np.ones((1024, 1024), np.float32))
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "tensorferry.publish.cli", "convert", str(tmp_path), "--to", "pt,tf,flax",
                             "--out", str(out)], stderr=subprocess.PIPE, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
    deadline = time.monotonic() + 60
    while not (out.exists() and any(p.name.endswith(".partial") and p.stat().st_size > (1 << 20) for p in out.iterdir())):
        assert proc.poll() is None and time.monotonic() < deadline, "the conversion ended before it could be interrupted"
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert not out.exists() or not any(out.iterdir()), sorted(p.name for p in out.iterdir())
