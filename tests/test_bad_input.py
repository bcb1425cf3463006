"""Corrupt, truncated, hostile or unsupported input: a clear error naming the file, exit 2, no output."""
from __future__ import annotations

import json
import pickle
import shutil
import struct

import pytest
from conftest import checkpoint_dir


@pytest.fixture
def good(tmp_path):
    """One converted copy of the CNN fixture in each format."""
    from tensorferry.converters import convert

    convert(checkpoint_dir("cnn"), tmp_path / "good", to=["pt", "tf", "flax"])
    return tmp_path / "good"


def _expect_refusal(cli, src, out, *words):
    code, stdout, err = cli("convert", src, "--to", "pt,tf,flax", "--out", out)
    assert code == 2, (code, err)
    assert str(src) in err or src.name in err, err
    for word in words:
        assert word in err, (word, err)
    assert not out.exists() or not any(out.iterdir()), list(out.iterdir())


def _damaged(tmp_path, good, name, mutate):
    data = bytearray((good / name).read_bytes())
    path = tmp_path / f"bad-{name}"
    path.write_bytes(bytes(mutate(data)))
    return path


def test_truncated_safetensors(cli, tmp_path, good):
    src = _damaged(tmp_path, good, "model.safetensors", lambda d: d[: len(d) - 100])
    _expect_refusal(cli, src, tmp_path / "out", "truncated")


def test_garbled_safetensors_header(cli, tmp_path, good):
    def garble(d):
        d[10:30] = b"\x00\xff" * 10
        return d

    _expect_refusal(cli, _damaged(tmp_path, good, "model.safetensors", garble), tmp_path / "out", "header")


def test_safetensors_offsets_out_of_range(cli, tmp_path, good):
    data = (good / "model.safetensors").read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    name = next(k for k in header if k != "__metadata__")
    begin, end = header[name]["data_offsets"]
    header[name]["data_offsets"] = [begin + 10**9, end + 10**9]
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    src = tmp_path / "offsets.safetensors"
    src.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + n:])
    _expect_refusal(cli, src, tmp_path / "out", name)


def test_truncated_h5(cli, tmp_path, good):
    _expect_refusal(cli, _damaged(tmp_path, good, "tf_model.h5", lambda d: d[: len(d) // 2]), tmp_path / "out", "HDF5")


def test_garbled_h5(cli, tmp_path, good):
    def garble(d):
        d[200:1200] = b"\xa5" * 1000
        return d

    _expect_refusal(cli, _damaged(tmp_path, good, "tf_model.h5", garble), tmp_path / "out")


def test_truncated_msgpack(cli, tmp_path, good):
    _expect_refusal(cli, _damaged(tmp_path, good, "flax_model.msgpack", lambda d: d[: len(d) - 50]), tmp_path / "out", "msgpack", "truncated")


def test_garbled_msgpack(cli, tmp_path, good):
    def garble(d):
        d[1:40] = b"\xc1" * 39  # 0xc1 is never used by msgpack
        return d

    _expect_refusal(cli, _damaged(tmp_path, good, "flax_model.msgpack", garble), tmp_path / "out", "msgpack")


class Payload:
    """A pickle that runs a command when unpickled: it must never run."""

    def __reduce__(self):
        import os

        return (os.system, ("touch PWNED",))


def test_pickle_with_code_payload_is_refused_not_run(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    src = tmp_path / "pytorch_model.bin"
    src.write_bytes(pickle.dumps({"weight": Payload()}))
    _expect_refusal(cli, src, tmp_path / "out", "refused to unpickle")
    assert not (tmp_path / "PWNED").exists()


def test_unknown_format(cli, tmp_path):
    src = tmp_path / "weights.onnx"
    src.write_bytes(b"\x08\x07\x12\x04" + bytes(range(200)))
    _expect_refusal(cli, src, tmp_path / "out", "unknown format")


def test_two_frameworks_in_one_folder(cli, tmp_path, good):
    src = tmp_path / "mixed"
    src.mkdir()
    shutil.copy(good / "model.safetensors", src)
    shutil.copy(good / "tf_model.h5", src)
    _expect_refusal(cli, src, tmp_path / "out", "several frameworks", "--from")


def test_missing_shard(cli, tmp_path):
    from tensorferry.converters import convert

    convert(checkpoint_dir("cnn"), tmp_path / "sharded", to=["pt"], max_shard_size="1KB")
    next((tmp_path / "sharded").glob("model-00002-*.safetensors")).unlink()
    code, _, err = cli("convert", tmp_path / "sharded", "--to", "tf", "--out", tmp_path / "out")
    assert code == 2 and "missing" in err and "model.safetensors.index.json" in err


def test_failure_midway_leaves_no_partial_file(tmp_path, good):
    """The first target is fine, the second fails: neither appears under its final name."""
    from tensorferry.converters import InputError, convert

    convert(checkpoint_dir("cnn"), tmp_path / "bf16", to=["pt"], dtype="bfloat16")
    with pytest.raises(InputError):
        convert(tmp_path / "bf16", tmp_path / "out", to=["flax", "tf"])
    assert not (tmp_path / "out").exists() or sorted(p.name for p in (tmp_path / "out").iterdir()) == []
