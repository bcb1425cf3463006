"""File-level client methods: uploads (regular, LFS basic, folder, copy, delete), downloads,
tree and paths-info paging, Range reads, validate-yaml and 412 on a stale parent commit."""
from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

import pytest
from huggingface_hub import (CommitOperationAdd, CommitOperationCopy, CommitOperationDelete, HfApi,
                             HfFileSystem, hf_hub_download, snapshot_download)
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, RevisionNotFoundError
from huggingface_hub.utils import get_session

from .hub_helpers import sha256_file
from tensorferry.publish.hub.blobs import BlobStore


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "model"
    (root / "sub" / "deep").mkdir(parents=True)
    (root / "config.json").write_text('{"hidden_size": 8}\n')
    (root / "sub" / "a.txt").write_text("a\n")
    (root / "sub" / "deep" / "b.txt").write_text("b\n")
    (root / "model.safetensors").write_bytes(os.urandom(3 << 20))  # LFS by name
    (root / "big.dat").write_bytes(os.urandom(11 << 20))  # LFS by size
    return root


def test_upload_folder_and_download_everything(api: HfApi, hub, repo: str, folder: Path, tmp_path: Path) -> None:
    api.upload_folder(repo_id=repo, folder_path=folder, commit_message="weights")
    info = api.model_info(repo, files_metadata=True)
    by_name = {s.rfilename: s for s in info.siblings}
    for name in ("model.safetensors", "big.dat"):
        assert by_name[name].lfs.sha256 == sha256_file(folder / name)
        assert by_name[name].size == (folder / name).stat().st_size
    assert by_name["config.json"].lfs is None
    snap = Path(snapshot_download(repo, endpoint=hub.url, token=api.token, cache_dir=tmp_path / "c"))
    for f in folder.rglob("*"):
        if f.is_file():
            assert sha256_file(snap / f.relative_to(folder)) == sha256_file(f), f
    # The cache names LFS blobs after their sha256 (X-Linked-Etag) and regular ones after the git sha1.
    blobs = {p.name for p in (tmp_path / "c").glob("models--*/blobs/*")}
    assert sha256_file(folder / "big.dat") in blobs
    refs_main = next((tmp_path / "c").glob("models--*/refs/main"))
    assert refs_main.read_text() == info.sha


def test_hf_hub_download_at_revision_and_errors(api: HfApi, hub, repo: str, tmp_path: Path) -> None:
    first = api.upload_file(path_or_fileobj=b"v1\n", path_in_repo="dir/f.txt", repo_id=repo).oid
    api.upload_file(path_or_fileobj=b"v2\n", path_in_repo="dir/f.txt", repo_id=repo)
    kw = dict(endpoint=hub.url, token=api.token, cache_dir=tmp_path)
    assert Path(hf_hub_download(repo, "dir/f.txt", **kw)).read_bytes() == b"v2\n"
    assert Path(hf_hub_download(repo, "dir/f.txt", revision=first, **kw)).read_bytes() == b"v1\n"
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(repo, "missing.txt", **kw)
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(repo, "dir/f.txt", revision="nope", **kw)
    assert api.file_exists(repo, "dir/f.txt") and not api.file_exists(repo, "dir/g.txt")


def test_unchanged_files_are_skipped_and_lfs_dedups(api: HfApi, repo: str) -> None:
    data = os.urandom(2 << 20)
    api.upload_file(path_or_fileobj=data, path_in_repo="w.bin", repo_id=repo)
    head = api.model_info(repo).sha
    # preupload returns the remote oid: an identical file is dropped, so no new commit is made.
    api.create_commit(repo, [CommitOperationAdd("w.bin", data)], commit_message="same again")
    assert api.model_info(repo).sha == head
    # Same bytes under a new name: the LFS batch answers "already stored" and the commit still works.
    api.create_commit(repo, [CommitOperationAdd("copy-of-w.bin", data)], commit_message="dup")
    info = api.model_info(repo, files_metadata=True)
    lfs = {s.rfilename: s.lfs.sha256 for s in info.siblings if s.lfs}
    assert lfs["copy-of-w.bin"] == lfs["w.bin"] == hashlib.sha256(data).hexdigest()


def test_copy_and_delete_operations(api: HfApi, hub, repo: str, folder: Path, tmp_path: Path) -> None:
    api.upload_folder(repo_id=repo, folder_path=folder)
    api.create_commit(repo, [
        CommitOperationCopy("model.safetensors", "copies/model.safetensors"),  # lfsFile without size
        CommitOperationCopy("config.json", "copies/config.json"),  # regular: downloaded and re-sent
        CommitOperationDelete("sub/"),
        CommitOperationDelete("big.dat"),
    ], commit_message="reshuffle")
    files = set(api.list_repo_files(repo))
    assert files == {".gitattributes", "config.json", "model.safetensors", "copies/model.safetensors",
                     "copies/config.json"}
    got = hf_hub_download(repo, "copies/model.safetensors", endpoint=hub.url, token=api.token, cache_dir=tmp_path)
    assert sha256_file(got) == sha256_file(folder / "model.safetensors")
    with pytest.raises(EntryNotFoundError):
        api.create_commit(repo, [CommitOperationDelete("not-there.txt")], commit_message="x")


def test_tree_paging_recursion_and_paths_info(api: HfApi, repo: str, folder: Path) -> None:
    api.upload_folder(repo_id=repo, folder_path=folder)
    top = {e.path: type(e).__name__ for e in api.list_repo_tree(repo)}
    assert top == {".gitattributes": "RepoFile", "big.dat": "RepoFile", "config.json": "RepoFile",
                   "model.safetensors": "RepoFile", "sub": "RepoFolder"}
    everything = [e.path for e in api.list_repo_tree(repo, recursive=True)]  # 8 entries, pages of 3
    assert len(everything) == 8
    assert set(everything) == set(top) | {"sub/a.txt", "sub/deep", "sub/deep/b.txt"}
    assert [e.path for e in api.list_repo_tree(repo, path_in_repo="sub/deep")] == ["sub/deep/b.txt"]
    expanded = list(api.list_repo_tree(repo, path_in_repo="sub", expand=True))
    assert all(e.last_commit is not None for e in expanded)
    big = next(e for e in api.list_repo_tree(repo) if e.path == "big.dat")
    assert big.lfs.sha256 == sha256_file(folder / "big.dat") and big.size == 11 << 20
    with pytest.raises(EntryNotFoundError):
        list(api.list_repo_tree(repo, path_in_repo="nope"))
    info = api.get_paths_info(repo, ["config.json", "sub", "missing"])
    assert [(type(i).__name__, i.path) for i in info] == [("RepoFile", "config.json"), ("RepoFolder", "sub")]


def test_range_reads_through_hffilesystem(api: HfApi, hub, repo: str) -> None:
    data = os.urandom(3 << 20)
    api.upload_file(path_or_fileobj=data, path_in_repo="r.bin", repo_id=repo)
    fs = HfFileSystem(endpoint=hub.url, token=api.token)
    with fs.open(f"{repo}/r.bin", "rb", block_size=4096) as f:
        f.seek(1_000_000)
        assert f.read(5000) == data[1_000_000:1_005_000]
    url = f"{hub.url}/{repo}/resolve/main/r.bin"
    r = get_session().get(url, headers={"Range": "bytes=-10"})
    assert r.status_code == 206 and r.content == data[-10:]
    assert r.headers["content-range"] == f"bytes {len(data) - 10}-{len(data) - 1}/{len(data)}"
    r = get_session().get(url, headers={"Range": f"bytes={len(data)}-"})
    assert r.status_code == 416
    head = get_session().head(url)
    assert head.headers["x-linked-size"] == str(len(data))
    assert head.headers["x-linked-etag"].strip('"') == hashlib.sha256(data).hexdigest()
    assert head.headers["x-repo-commit"] == api.model_info(repo).sha


def test_invalid_model_card_yaml_is_refused(api: HfApi, repo: str) -> None:
    with pytest.raises(ValueError, match="Invalid YAML"):
        api.upload_file(path_or_fileobj=b"---\nlicense: [unclosed\n---\n# x\n", path_in_repo="README.md",
                        repo_id=repo)
    assert "README.md" not in api.list_repo_files(repo)


def test_concurrent_commits_with_same_parent_one_gets_412(hub, users, repo: str) -> None:
    parent = HfApi(endpoint=hub.url, token=users.alice).model_info(repo).sha
    barrier = threading.Barrier(2)
    results: dict[str, object] = {}

    def push(name: str, token: str) -> None:
        api = HfApi(endpoint=hub.url, token=token)
        barrier.wait()
        try:
            results[name] = api.create_commit(repo, [CommitOperationAdd(f"{name}.txt", name.encode())],
                                              commit_message=name, parent_commit=parent).oid
        except HfHubHTTPError as e:
            results[name] = e.response.status_code

    threads = [threading.Thread(target=push, args=(n, users.alice)) for n in ("one", "two")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(type(v).__name__ for v in results.values()) == ["int", "str"], results
    assert 412 in results.values()
    winner = next(k for k, v in results.items() if isinstance(v, str))
    api = HfApi(endpoint=hub.url, token=users.alice)
    assert api.model_info(repo).sha == results[winner]
    assert set(api.list_repo_files(repo)) == {".gitattributes", f"{winner}.txt"}


def test_lfs_batch_offers_multipart_for_big_objects(api: HfApi, hub, repo: str) -> None:
    from huggingface_hub.lfs import UploadInfo, post_lfs_batch_info

    big, small = 200 << 20, 1 << 20
    infos = [UploadInfo(sha256=hashlib.sha256(b"big").digest(), size=big, sample=b""),
             UploadInfo(sha256=hashlib.sha256(b"small").digest(), size=small, sample=b"")]
    actions, errors = post_lfs_batch_info(upload_infos=infos, token=api.token, repo_type="model",
                                          repo_id=repo, endpoint=hub.url)[:2]
    assert errors == []
    big_upload, small_upload = actions[0]["actions"]["upload"], actions[1]["actions"]["upload"]
    chunk = int(big_upload["header"]["chunk_size"])
    parts = [k for k in big_upload["header"] if k.isdigit()]
    assert len(parts) == -(-big // chunk) and parts[0] == "00001"
    assert "header" not in small_upload or "chunk_size" not in small_upload.get("header", {})
    # Upload URLs carry a signature, not the token; tampering with them is refused.
    assert api.token not in big_upload["href"]
    r = get_session().put(small_upload["href"].replace("/lfs/upload/", "/lfs/upload/9"), content=b"x")
    assert r.status_code == 403


def test_a_multipart_upload_lands_whole_and_a_bad_part_is_refused(api: HfApi, hub, repo: str, tmp_path: Path) -> None:
    """Past 64 MiB the client uploads 16 MiB parts into one file on the server; completion checks the whole sha256."""
    from huggingface_hub.lfs import UploadInfo, post_lfs_batch_info

    data = os.urandom((64 << 20) + (5 << 20) + 123)  # five parts, the last one short
    (tmp_path / "big.bin").write_bytes(data)
    api.upload_file(path_or_fileobj=tmp_path / "big.bin", path_in_repo="big.bin", repo_id=repo)
    got = hf_hub_download(repo, "big.bin", endpoint=hub.url, token=api.token, cache_dir=tmp_path / "cache")
    assert sha256_file(Path(got)) == hashlib.sha256(data).hexdigest()
    # Parts that do not add up to the object: completion refuses, nothing is stored under its oid.
    other = data[::-1]
    info = UploadInfo(sha256=hashlib.sha256(other).digest(), size=len(other), sample=b"")
    action = post_lfs_batch_info(upload_infos=[info], token=api.token, repo_type="model", repo_id=repo,
                                 endpoint=hub.url)[0][0]["actions"]["upload"]
    chunk, session = int(action["header"]["chunk_size"]), get_session()
    etags = []
    for i in range(1, 6):
        piece = other[(i - 1) * chunk:i * chunk]
        if i == 3:
            piece = bytes(len(piece))  # the wrong bytes, of the right length
        r = session.put(action["header"][f"{i:05d}"], content=piece)
        assert r.status_code == 200
        etags.append({"partNumber": i, "etag": r.headers["etag"]})
    r = session.post(action["href"], json={"oid": info.sha256.hex(), "parts": etags})
    assert r.status_code == 400 and "do not match" in r.text
    r = session.post(action["href"], json={"oid": info.sha256.hex(), "parts": etags[:4]})
    assert r.status_code == 400


def _multipart(api: HfApi, hub, repo: str, data: bytes) -> tuple[object, dict, int]:
    """The LFS batch answer for DATA (over 64 MiB): (its UploadInfo, the upload action, the part size)."""
    from huggingface_hub.lfs import UploadInfo, post_lfs_batch_info

    info = UploadInfo(sha256=hashlib.sha256(data).digest(), size=len(data), sample=data[:512])
    action = post_lfs_batch_info(upload_infos=[info], token=api.token, repo_type="model", repo_id=repo,
                                 endpoint=hub.url)[0][0]["actions"]["upload"]
    return info, action, int(action["header"]["chunk_size"])


def test_a_part_arriving_during_or_before_the_completion_never_changes_the_object(api: HfApi, hub, repo: str) -> None:
    """A part still arriving (or sent while the completion hashes the object) would write into the object
    after it is checked: the completion finds such a part missing, a part sent during it is refused,
    and the object stored under the oid is always the one uploaded."""
    import socket
    from urllib.parse import urlsplit

    data = os.urandom((64 << 20) + 999)
    info, action, chunk = _multipart(api, hub, repo, data)
    session, n = get_session(), -(-len(data) // chunk)
    etags = {i: session.put(action["header"][f"{i:05d}"], content=data[(i - 1) * chunk:i * chunk]).headers["etag"]
             for i in range(1, n + 1)}
    body = lambda: {"oid": info.sha256.hex(), "parts": [{"partNumber": i, "etag": e} for i, e in etags.items()]}  # noqa: E731
    url = urlsplit(action["header"]["00002"])
    with socket.create_connection((url.hostname, url.port)) as sock:  # part 2 again, zeros, half sent
        sock.sendall(f"PUT {url.path} HTTP/1.1\r\nHost: x\r\nContent-Length: {chunk}\r\n\r\n".encode())
        sock.sendall(bytes(chunk // 2))
        time.sleep(0.3)
        r = session.post(action["href"], json=body())
        assert r.status_code == 400 and "Part 2 missing" in r.text, r.text
    etags[2] = session.put(action["header"]["00002"], content=data[chunk:2 * chunk]).headers["etag"]
    # Part 1 as zeros, sent while the completion runs: refused, or too late to touch the stored object.
    done = {}
    racer = threading.Thread(target=lambda: done.update(racer=session.put(action["header"]["00001"], content=bytes(chunk))))
    completer = threading.Thread(target=lambda: done.update(r=session.post(action["href"], json=body())))
    completer.start()
    racer.start()
    completer.join()
    racer.join()
    assert done["r"].status_code in (200, 400), done["r"].text
    assert done["racer"].status_code in (200, 409), done["racer"].text  # 409: it came during the completion
    assert done["racer"].status_code == 200 or done["r"].status_code == 200
    if done["r"].status_code == 400:  # the zeros came first and took part 1's receipt: send it again
        etags[1] = session.put(action["header"]["00001"], content=data[:chunk]).headers["etag"]
        assert session.post(action["href"], json=body()).status_code == 200
    assert sha256_file(BlobStore(hub.data_dir).lfs_path(info.sha256.hex())) == info.sha256.hex()


def test_multipart_parts_out_of_order_or_retried_still_land_whole(api: HfApi, hub, repo: str, tmp_path: Path) -> None:
    """Parts may come in any order or again; the completion hashes the file: the object stored is the
    one uploaded, and the wrong bytes of a retried part are gone.  A short part gets no receipt."""
    data = os.urandom((64 << 20) + 4321)
    info, action, chunk = _multipart(api, hub, repo, data)
    session, n = get_session(), -(-len(data) // chunk)
    etags = {}
    # 1, then 2 with the wrong bytes, 2 again right, then the rest backwards
    for i, piece in [(1, None), (2, b"x" * chunk), (2, None), *[(i, None) for i in range(n, 2, -1)]]:
        r = session.put(action["header"][f"{i:05d}"], content=piece or data[(i - 1) * chunk:i * chunk])
        assert r.status_code == 200
        etags[i] = r.headers["etag"]
    r = session.put(action["header"]["00001"], content=data[:1000])  # cut short: refused, part 1 has no receipt now
    assert r.status_code == 400 and "must be" in r.text
    r = session.post(action["href"], json={"oid": info.sha256.hex(), "parts": [{"partNumber": i, "etag": e} for i, e in etags.items()]})
    assert r.status_code == 400 and "Part 1 missing" in r.text
    r = session.put(action["header"]["00001"], content=data[:chunk])
    etags[1] = r.headers["etag"]
    r = session.post(action["href"], json={"oid": info.sha256.hex(), "parts": [{"partNumber": i, "etag": e} for i, e in etags.items()]})
    assert r.status_code == 200, r.text
    (tmp_path / "big.bin").write_bytes(data)  # the batch answer now says "stored": nothing is sent again
    api.create_commit(repo, operations=[CommitOperationAdd("big.bin", tmp_path / "big.bin")], commit_message="parts in any order")
    got = hf_hub_download(repo, "big.bin", endpoint=hub.url, token=api.token, cache_dir=tmp_path / "cache")
    assert sha256_file(Path(got)) == info.sha256.hex()
