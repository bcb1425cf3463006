"""Storage that survives: a 200 MB upload streams (server memory stays flat), a restart keeps
everything, and kill -9 in the middle of a commit leaves the previous, consistent state."""
from __future__ import annotations

import errno
import hashlib
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from huggingface_hub import CommitOperationAdd, HfApi, hf_hub_download
from huggingface_hub.errors import EntryNotFoundError
from huggingface_hub.lfs import UploadInfo, post_lfs_batch_info

from .hub_helpers import PeakSampler, rss_anon_kb, sha256_file
from tensorferry.publish.hub import LocalHub, create_token

BIG = 200 << 20
UPLOADER = """
import os
from huggingface_hub import CommitOperationAdd, HfApi
if {phase!r} == "lfs-upload":  # a 200 MB LFS file: killed while its parts stream in
    extra = [CommitOperationAdd("huge.bin", {big!r})]
else:  # 48 MB of text sent inline: killed while the commit body itself streams in
    extra = [CommitOperationAdd(f"huge-{{i}}.txt", os.urandom(4 << 20).hex().encode()) for i in range(6)]
HfApi(endpoint={url!r}).create_commit("alice/crash", [CommitOperationAdd("config.json", b"config v2\\n"), *extra],
                                      commit_message="v2")
"""


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "weights.bin"
    with open(path, "wb") as f:
        block = os.urandom(1 << 20)
        for i in range(BIG >> 20):
            f.write(hashlib.sha256(block + bytes([i % 256, i // 256])).digest() * (1 << 15))
    return path


def test_200mb_upload_streams_with_flat_server_memory(tmp_path: Path, big_file: Path) -> None:
    data_dir = tmp_path / "hub"
    with LocalHub(data_dir) as hub:
        api = HfApi(endpoint=hub.url, token=create_token(data_dir, "alice"))
        api.create_repo("alice/big")
        api.upload_file(path_or_fileobj=os.urandom(1 << 20), path_in_repo="warmup.bin", repo_id="alice/big")
        baseline = rss_anon_kb(hub.pid)
        sampler = PeakSampler(hub.pid)
        sampler.start()
        api.upload_file(path_or_fileobj=str(big_file), path_in_repo="weights.bin", repo_id="alice/big")
        got = hf_hub_download("alice/big", "weights.bin", endpoint=hub.url, token=api.token, cache_dir=tmp_path / "c")
        sampler.stop.set()
        sampler.join()
        growth_mb = (sampler.peak - baseline) / 1024
        print(f"server RssAnon: baseline {baseline / 1024:.1f} MB, peak {sampler.peak / 1024:.1f} MB")
        assert growth_mb < 48, f"server memory grew by {growth_mb:.0f} MB for a {BIG >> 20} MB file"
        assert sha256_file(got) == sha256_file(big_file)
        lfs = next(s.lfs for s in api.model_info("alice/big", files_metadata=True).siblings
                   if s.rfilename == "weights.bin")
        assert lfs.size == BIG and lfs.sha256 == sha256_file(big_file)


@pytest.mark.parametrize("durable", [True, False], ids=["fsync", "no-fsync"])
def test_restart_keeps_everything(tmp_path: Path, durable: bool) -> None:
    data_dir = tmp_path / "hub"
    token = create_token(data_dir, "alice", org="acme")
    payload = os.urandom(2 << 20)
    with LocalHub(data_dir, durable=durable) as hub:
        assert ("no fsync" in hub.log_path.read_text()) != durable
        api = HfApi(endpoint=hub.url, token=token)
        api.create_repo("acme/kept")
        api.create_repo("alice/hidden", private=True)
        api.upload_file(path_or_fileobj=payload, path_in_repo="w.bin", repo_id="acme/kept")
        api.create_tag("acme/kept", tag="v1")
        api.create_branch("acme/kept", branch="dev")
        api.create_commit("acme/kept", [CommitOperationAdd("pr.txt", b"pr\n")], commit_message="pr", create_pr=True)
        before = (api.model_info("acme/kept").sha, api.list_repo_refs("acme/kept", include_pull_requests=True),
                  [c.commit_id for c in api.list_repo_commits("acme/kept")])
    with LocalHub(data_dir) as hub:  # a new process, most likely on another port
        api = HfApi(endpoint=hub.url, token=token)
        after = (api.model_info("acme/kept").sha, api.list_repo_refs("acme/kept", include_pull_requests=True),
                 [c.commit_id for c in api.list_repo_commits("acme/kept")])
        assert after == before
        assert api.model_info("alice/hidden").private is True
        assert [d.title for d in api.get_repo_discussions("acme/kept")] == ["pr"]
        got = hf_hub_download("acme/kept", "w.bin", endpoint=hub.url, token=token, cache_dir=tmp_path / "c")
        assert Path(got).read_bytes() == payload


@pytest.mark.parametrize("phase,durable", [("lfs-upload", True), ("commit-body", True), ("lfs-upload", False)])
def test_kill_9_during_a_commit_leaves_the_previous_state(tmp_path: Path, big_file: Path, phase: str, durable: bool) -> None:
    """Also without fsync (`hub serve --no-fsync`): a killed server never shows half a commit or object."""
    data_dir = tmp_path / "hub"
    token = create_token(data_dir, "alice")
    small, weights = b"config v1\n", os.urandom(3 << 20)
    hub = LocalHub(data_dir, durable=durable).start()
    try:
        api = HfApi(endpoint=hub.url, token=token)
        api.create_repo("alice/crash")
        api.create_commit("alice/crash", [CommitOperationAdd("config.json", small),
                                          CommitOperationAdd("model.safetensors", weights)], commit_message="v1")
        good = api.model_info("alice/crash").sha
        # The uploader is a separate client process: after the kill it would only sit in the
        # client's retry backoff, so it is stopped once the server is gone.
        script = UPLOADER.format(url=hub.url, big=str(big_file), phase=phase)
        uploader = subprocess.Popen([sys.executable, "-c", script], env=dict(os.environ, HF_TOKEN=token),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        in_flight: list[Path] = []
        while not in_flight and time.monotonic() < deadline and uploader.poll() is None:
            in_flight = [p for p in (data_dir / "tmp").rglob("*") if p.is_file() and p.stat().st_size > (8 << 20)]
            time.sleep(0.005)
        hub.kill()  # SIGKILL mid-upload, before the commit could land
        uploader.kill()
        uploader.wait()
        assert in_flight, "the upload never reached the server"
    finally:
        hub.stop()

    with LocalHub(data_dir) as hub:
        api = HfApi(endpoint=hub.url, token=token)
        assert api.model_info("alice/crash").sha == good
        assert set(api.list_repo_files("alice/crash")) == {".gitattributes", "config.json", "model.safetensors"}
        kw = dict(endpoint=hub.url, token=token, cache_dir=tmp_path / "c")
        assert Path(hf_hub_download("alice/crash", "config.json", **kw)).read_bytes() == small
        assert sha256_file(hf_hub_download("alice/crash", "model.safetensors", **kw)) == hashlib.sha256(weights).hexdigest()
        for name in ("huge.bin", "huge-0.txt"):
            with pytest.raises(EntryNotFoundError):
                hf_hub_download("alice/crash", name, **kw)
        # No half object: the server still asks for the whole upload of the interrupted file.
        big_oid = sha256_file(big_file)
        actions, errs = post_lfs_batch_info(
            upload_infos=[UploadInfo(sha256=bytes.fromhex(big_oid), size=BIG, sample=b"")],
            token=token, repo_type="model", repo_id="alice/crash", endpoint=hub.url)[:2]
        assert not errs and "upload" in actions[0]["actions"]
        assert not list((data_dir / "objects" / "lfs").rglob(big_oid))
        assert list((data_dir / "tmp").iterdir()) == []  # crash leftovers dropped at start-up
        # And the repository takes commits again.
        api.upload_file(path_or_fileobj=b"after\n", path_in_repo="after.txt", repo_id="alice/crash")
        assert "after.txt" in api.list_repo_files("alice/crash")
    db = sqlite3.connect(data_dir / "hub.sqlite3")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_an_object_is_hashed_while_it_is_synced_and_a_failed_sync_is_an_error(tmp_path: Path) -> None:
    """``hash_and_sync`` runs fsync beside the hash pass; the digest is the file's, and an fsync that
    fails is raised, not dropped with its thread (the object must then never be referred to)."""
    from tensorferry.publish.hub.blobs import BlobStore

    data = os.urandom(3 << 20) + b"tail"
    for durable in (True, False):
        path = tmp_path / f"object-{durable}"
        path.write_bytes(data)
        assert BlobStore(tmp_path / "store", durable=durable).hash_and_sync(path) == (hashlib.sha256(data).hexdigest(), len(data))
    with pytest.raises(OSError) as failed:  # a character device: its fsync fails with EINVAL
        BlobStore(tmp_path / "store").hash_and_sync(Path("/dev/null"))
    assert failed.value.errno == errno.EINVAL
    assert BlobStore(tmp_path / "store", durable=False).hash_and_sync(Path("/dev/null"))[1] == 0  # no fsync asked


def test_a_hub_that_cannot_start_says_why_and_leaves_no_temp_folder(tmp_path: Path) -> None:
    """The server exits at once (its port is taken): HubError with its log, and the folder the ready
    file was to appear in is gone (each failed start used to leave one in /tmp)."""
    import socket
    import tempfile

    from tensorferry.converters.errors import HubError

    before = set(Path(tempfile.gettempdir()).glob("tf-hub-*"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(HubError, match="did not start"):
            LocalHub(tmp_path / "data", port=taken.getsockname()[1], startup_timeout=60).start()
    assert set(Path(tempfile.gettempdir()).glob("tf-hub-*")) == before
