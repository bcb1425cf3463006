"""OUT and the cases that need a real process or filesystem: stale variants, killed runs, full and
read-only disks, FIFOs under a real CLI, and the inputs that must keep working (caches of symlinks,
big-endian files)."""
from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import assert_same_checkpoint, checkpoint_dir

from tensorferry.converters import convert, open_source
from tensorferry.converters.maps import kinds as kind_maps
from tensorferry.converters.maps import transformers as tx_maps

from .build import B, W, write_st

CLI = [sys.executable, "-m", "tensorferry.publish.cli", "convert"]


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def partials(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob(".*.partial"))


def pt_file(out: Path) -> Path:
    index = out / "model.safetensors.index.json"
    return index if index.exists() else out / "model.safetensors"


def test_a_new_variant_replaces_the_stale_files_of_its_format_and_nothing_else(tmp_path):
    src, out = checkpoint_dir("cnn"), tmp_path / "out"
    convert(src, out, to=["pt", "tf"])
    mine = {"notes.txt": b"mine", "tf_model.h5.bak": b"old", "other.h5": b"x", "model-extra.safetensors.txt": b"y"}
    for name, data in mine.items():
        (out / name).write_bytes(data)
    convert(src, out, to=["pt", "tf"], max_shard_size="2KB")  # single files → shards + index
    assert "tf_model.h5" not in names(out) and "model.safetensors" not in names(out)
    shards = [n for n in names(out) if n.startswith("model-0")]
    assert len(shards) >= 3 and "tf_model.h5.index.json" in names(out)
    assert_same_checkpoint(src, pt_file(out))
    convert(src, out, to=["pt", "tf"], max_shard_size="4KB")  # fewer shards: the old -of-0000N files go
    for fw, index in (("model-0", "model.safetensors.index.json"), ("tf_model-0", "tf_model.h5.index.json")):
        now = [n for n in names(out) if n.startswith(fw)]
        assert sorted(set(json.loads((out / index).read_text())["weight_map"].values())) == now
    assert len([n for n in names(out) if n.startswith("model-0")]) < len(shards)
    assert_same_checkpoint(src, pt_file(out))
    convert(src, out, to=["pt", "tf"])  # back to single files: shards and indexes go
    assert not [n for n in names(out) if "-of-" in n or n.endswith(".index.json")]
    assert_same_checkpoint(src, pt_file(out))
    assert all((out / n).read_bytes() == d for n, d in mine.items())  # never touched
    assert not partials(out)


def test_formats_not_written_are_left_alone(tmp_path):
    out = tmp_path / "out"
    convert(checkpoint_dir("cnn"), out, to=["tf", "flax"], max_shard_size="2KB")
    before = {n: (out / n).read_bytes() for n in names(out) if n.startswith("tf_model")}
    convert(checkpoint_dir("cnn"), out, to=["pt"])
    assert {n: (out / n).read_bytes() for n in names(out) if n.startswith("tf_model")} == before


KILL_MIDWAY = """
import os, signal, sys
from tensorferry.converters import convert
calls = 0
def progress(nbytes):
    global calls
    calls += 1
    if calls == int(sys.argv[3]):
        os.kill(os.getpid(), signal.SIGKILL)
convert(sys.argv[1], sys.argv[2], to=["pt", "tf", "flax"], progress=progress)
"""


def test_a_killed_runs_partial_files_are_removed_by_the_next_run(tmp_path):
    src, out = checkpoint_dir("transformer"), tmp_path / "out"
    n = len(open_source(src).infos)
    proc = subprocess.run([sys.executable, "-c", KILL_MIDWAY, str(src), str(out), str(n + 3)], capture_output=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    left = partials(out)
    assert left and not [n for n in names(out) if not n.endswith(".partial")], names(out)  # killed inside TF
    convert(src, out, to=["pt", "tf", "flax"])
    assert not partials(out)
    assert names(out) == ["config.json", "flax_model.msgpack", "model.safetensors", "tf_model.h5"]
    assert_same_checkpoint(src, out / "model.safetensors")


def test_partial_files_of_live_runs_and_of_other_programs_are_kept(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    live = subprocess.Popen(["sleep", "120"])
    dead = subprocess.Popen(["true"])
    dead.wait()
    try:
        keep = [f".tf_model.h5.{live.pid}-abc123.partial", f".notes.txt.{dead.pid}-abc123.partial", ".tf_model.h5.swp"]
        gone = [f".tf_model.h5.{dead.pid}-abc123.partial", ".model.safetensors.k2j4h5.partial",
                f".model-00001-of-00002.safetensors.{dead.pid}-zz.partial", f".config.json.{dead.pid}-q.partial"]
        for name in keep + gone:
            (out / name).write_bytes(b"partial")
        convert(checkpoint_dir("cnn"), out, to=["pt", "tf"])
        assert [n for n in keep if (out / n).exists()] == keep
        assert [n for n in gone if (out / n).exists()] == []
    finally:
        live.kill()
        live.wait()


@pytest.fixture
def mount_tmpfs(tmp_path):
    """Mount a small tmpfs (root only; the test is skipped, and says so, elsewhere)."""
    mounted: list[Path] = []

    def mount(options: str) -> Path:
        point = tmp_path / f"mnt{len(mounted)}"
        point.mkdir()
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True, text=True)
        if r.returncode:
            pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip()})")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=False)


def test_a_full_disk_is_a_clear_error_and_leaves_nothing(mount_tmpfs, cli):
    disk = mount_tmpfs("size=64k")
    (disk / "before.txt").write_text("kept")
    code, _, err = cli("convert", checkpoint_dir("transformer"), "--to", "pt,tf,flax", "--out", disk / "out")
    assert code == 2, err
    assert "No space left on device" in err and str(disk / "out") in err, err
    assert names(disk) == ["before.txt"]  # OUT, which the run created, is gone again; no partial file


def test_a_read_only_out_is_a_clear_error(mount_tmpfs, cli):
    disk = mount_tmpfs("size=1m")
    (disk / "out").mkdir()
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    code, _, err = cli("convert", checkpoint_dir("cnn"), "--to", "pt", "--out", disk / "out")
    assert code == 2 and "out" in err and ("not writable" in err or "Read-only" in err), err
    code, _, err = cli("convert", checkpoint_dir("cnn"), "--to", "pt", "--out", disk / "new" / "out")
    assert code == 2 and "Read-only file system" in err and str(disk / "new") in err, err


def _small_files():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead of killing
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))


def test_a_file_size_limit_is_a_clear_error_in_a_real_process(tmp_path):
    """The same failure path as a full disk, without root: RLIMIT_FSIZE makes large writes fail."""
    out = tmp_path / "out"
    proc = subprocess.run([*CLI, str(checkpoint_dir("transformer")), "--to", "pt,tf,flax", "--out", str(out)],
                          capture_output=True, text=True, timeout=300, preexec_fn=_small_files)
    assert proc.returncode == 2, proc.stderr
    assert "File too large" in proc.stderr and str(out) in proc.stderr and "internal error" not in proc.stderr
    assert not out.exists()


@pytest.mark.parametrize("where", ["weights-file", "in-folder", "config", "index"])
def test_a_fifo_is_refused_by_the_real_cli_without_blocking(tmp_path, where):
    src = tmp_path / "src"
    src.mkdir()
    if where == "weights-file":
        os.mkfifo(tmp_path / "w.safetensors")
        src = tmp_path / "w.safetensors"
    elif where == "in-folder":
        os.mkfifo(src / "model.safetensors")
    elif where == "config":
        write_st(src / "model.safetensors")
        os.mkfifo(src / "config.json")
    else:
        write_st(src / "model-00001-of-00001.safetensors")
        os.mkfifo(src / "model.safetensors.index.json")
    proc = subprocess.run([*CLI, str(src), "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "FIFO" in proc.stderr, proc.stderr
    assert not (tmp_path / "out").exists()


def test_a_hugging_face_cache_snapshot_of_symlinks_converts(tmp_path):
    """Symlinks are followed inside SRC, and from a cache snapshot into its blobs folder."""
    repo = tmp_path / "models--org--tiny"
    snap, blobs = repo / "snapshots" / "0123abc", repo / "blobs"
    snap.mkdir(parents=True)
    blobs.mkdir()
    write_st(blobs / "aaaa")
    (blobs / "bbbb").write_text('{"model_type": "tiny"}')
    (snap / "model.safetensors").symlink_to("../../blobs/aaaa")
    (snap / "config.json").symlink_to("../../blobs/bbbb")
    convert(snap, tmp_path / "out", to=["flax"])
    assert names(tmp_path / "out") == ["config.json", "flax_model.msgpack"]
    inside = tmp_path / "src"
    (inside / "real").mkdir(parents=True)
    write_st(inside / "real" / "w.safetensors")
    (inside / "model.safetensors").symlink_to("real/w.safetensors")
    convert(inside, tmp_path / "out2", to=["pt"])
    assert_same_checkpoint(inside / "real" / "w.safetensors", tmp_path / "out2")


def test_big_endian_h5_converts_to_the_right_values(tmp_path):
    src = tmp_path / "be.h5"
    with h5py.File(src, "w") as f:
        f.attrs["layer_names"] = np.asarray([b"fc"])
        g = f.create_group("fc")
        g.attrs["weight_names"] = np.asarray([b"model/fc/kernel:0", b"model/fc/bias:0"])
        g.create_dataset("model/fc/kernel:0", data=W.T.astype(">f4"))
        g.create_dataset("model/fc/bias:0", data=B.astype(">f4"), chunks=(2,))  # read through HDF5, not mmap
    convert(src, tmp_path / "out", to=["pt", "flax"])
    back = open_source(tmp_path / "out" / "model.safetensors")
    assert np.array_equal(back.load("fc.weight"), W) and np.array_equal(back.load("fc.bias"), B)
    flax = open_source(tmp_path / "out" / "flax_model.msgpack")
    assert np.array_equal(flax.load("fc/kernel"), W.T) and flax.load("fc/kernel").dtype == np.dtype("float32")


def test_model_type_is_only_ever_a_key(tmp_path):
    """Issue 9.2: a model_type that walks out of the shipped maps finds nothing, even with a valid map there."""
    evil = tmp_path / "x" / "evilmap.json"
    evil.parent.mkdir()
    doc = shutil.copy(tx_maps.MAPS_DIR / "bert.json", evil)
    rel = os.path.relpath(Path(doc).with_suffix(""), tx_maps.MAPS_DIR)
    assert Path(tx_maps.MAPS_DIR, rel + ".json").resolve() == evil.resolve()  # the path the old code opened
    assert tx_maps.find_map({"model_type": rel}) is None
    assert kind_maps.find_full({"model_type": os.path.relpath(tmp_path / "x" / "evilmap", kind_maps.MAPS)}) is None
