"""Sizes, timeouts and connection floods against the local Hub: bodies are capped before they are
read (413), inline files are refused above their cap in bounded memory, half-sent requests are
timed out, and a flood of slow clients neither exhausts the server nor locks normal clients out.

All traffic stays on loopback; every loop is bounded in count and time. The module's server runs
with short timeouts (1.5 s for a request head, 2 s of silence in a body) so the cases stay fast."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest
from huggingface_hub import HfApi, hf_hub_download

from .hub_helpers import PeakSampler, assert_healthy, host_port, ndjson, raw, send_streaming, unique
from tensorferry.publish.hub import LocalHub, create_token

HEADER_TIMEOUT, IDLE_TIMEOUT, MAX_CONNECTIONS = 1.5, 2.0, 300
MB = 1 << 20


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalHub, str]]:
    data = tmp_path_factory.mktemp("hostile-limits")
    with LocalHub(data, header_timeout=HEADER_TIMEOUT, idle_timeout=IDLE_TIMEOUT,
                  max_connections=MAX_CONNECTIONS) as hub:
        yield hub, create_token(data, "mallory")


@pytest.fixture(scope="module")
def repo(server: tuple[LocalHub, str]) -> str:
    hub, token = server
    repo_id = f"mallory/{unique()}"
    HfApi(endpoint=hub.url, token=token).create_repo(repo_id)
    return repo_id


def _head(url: str, method: str, path: str, token: str | None = None, length: int | None = None,
          content_type: str = "application/json", chunked: bool = False) -> bytes:
    host, port = host_port(url)
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Type: {content_type}"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    elif length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _json_error(response: bytes) -> str:
    return str(json.loads(response.partition(b"\r\n\r\n")[2])["error"])


# --- sizes ---------------------------------------------------------------------------------------

def test_200mb_inline_file_is_refused_in_bounded_memory(server, repo: str) -> None:
    hub, token = server
    start = ndjson({"key": "header", "value": {"summary": "huge inline"}}) + \
        b'{"key":"file","value":{"path":"big.txt","encoding":"base64","content":"'
    block = base64.b64encode(b"\0" * (3 * MB))  # 4 MB of base64 per chunk, 200 MB decoded in all
    n_blocks = 200 // 3 + 1
    end = b'"}}\n'
    length = len(start) + len(block) * n_blocks + len(end)
    chunks = [start, *([block] * n_blocks), end]
    with PeakSampler(hub.pid) as mem:
        status, response, sent = send_streaming(hub.url, _head(hub.url, "POST", f"/api/models/{repo}/commit/main",
                                                                token, length, "application/x-ndjson"), chunks)
    print(f"inline 200 MB commit: server RssAnon +{mem.growth_mb:.1f} MB, {sent / MB:.0f} MB sent before the answer")
    assert status == 413, response[:300]
    assert "inline" in _json_error(response)
    assert mem.growth_mb < 64
    assert sent < 64 * MB  # refused once the line passed its cap, not after reading 270 MB
    assert "big.txt" not in HfApi(endpoint=hub.url, token=token).list_repo_files(repo)
    assert_healthy(hub.url)


def test_inline_files_below_the_cap_still_work(server, repo: str, tmp_path: Path) -> None:
    hub, token = server
    api = HfApi(endpoint=hub.url, token=token)
    text = (b"0123456789abcdef" * (MB // 16)) * 9  # 9 MB of text: preupload says regular (inline)
    api.upload_file(path_or_fileobj=text, path_in_repo="nine.txt", repo_id=repo)
    info = {s.rfilename: s for s in api.model_info(repo, files_metadata=True).siblings}
    assert info["nine.txt"].lfs is None and info["nine.txt"].size == len(text)
    got = hf_hub_download(repo, "nine.txt", endpoint=hub.url, token=token, cache_dir=tmp_path)
    assert hashlib.sha256(Path(got).read_bytes()).digest() == hashlib.sha256(text).digest()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_300mb_json_body_answers_413_before_reading(server, chunked: bool) -> None:
    hub, token = server
    block = b"[" + b"1," * (MB // 2 - 1) + b"1]"
    frame = (f"{len(block):x}\r\n".encode() + block + b"\r\n") if chunked else block
    head = _head(hub.url, "POST", "/api/repos/create", token, 300 * MB, chunked=chunked)
    with PeakSampler(hub.pid) as mem:
        status, response, sent = send_streaming(hub.url, head, [frame] * 300)
    print(f"300 MB JSON body ({'chunked' if chunked else 'content-length'}): server RssAnon +{mem.growth_mb:.1f} MB,"
          f" {sent / MB:.0f} MB sent before the answer")
    assert status == 413, response[:300]
    assert "too large" in _json_error(response)
    assert mem.growth_mb < 64 and sent < 64 * MB
    assert_healthy(hub.url)


@pytest.mark.parametrize("path,expected", [("/nobody/missing.git/info/lfs/objects/batch", 404),
                                           ("/api/repos/create", 401),
                                           ("/api/models/nobody/missing/preupload/main", 404)])
def test_anonymous_requests_are_answered_without_their_body(server, path: str, expected: int) -> None:
    hub, _ = server
    started = time.monotonic()
    # 300 MB announced, nothing sent: the answer must not wait for the body.
    status, response, _ = send_streaming(hub.url, _head(hub.url, "POST", path, None, 300 * MB), [], timeout=10)
    assert status == expected, response[:300]
    assert time.monotonic() - started < 5
    assert_healthy(hub.url)


def test_lfs_upload_cannot_exceed_its_ticket(server, repo: str) -> None:
    hub, token = server
    from huggingface_hub.lfs import UploadInfo, post_lfs_batch_info

    data = b"small object\n"
    info = UploadInfo(sha256=hashlib.sha256(data).digest(), size=len(data), sample=data)
    actions = post_lfs_batch_info(upload_infos=[info], token=token, repo_type="model", repo_id=repo,
                                  endpoint=hub.url)[0]
    href = actions[0]["actions"]["upload"]["href"]
    path = "/" + href.split("/", 3)[3]
    for chunked in (False, True):
        head = _head(hub.url, "PUT", path, None, 100 * MB, "application/octet-stream", chunked)
        frame = (b"100000\r\n" + b"x" * MB + b"\r\n") if chunked else b"x" * MB
        status, response, sent = send_streaming(hub.url, head, [frame] * 100)
        assert status == 400, response[:300]
        assert sent < 32 * MB
    big_tmp = [p for p in (hub.data_dir / "tmp").rglob("*") if p.is_file() and p.stat().st_size > MB]
    assert big_tmp == []
    assert_healthy(hub.url)


def test_a_body_in_odd_pieces_with_a_pipelined_request_behind_it(server, repo: str) -> None:
    """Content-Length bodies skip h11's buffer (connections._body_direct): the pieces still add up to the
    object, and a request sent right behind the body, in the same packet, is still answered."""
    hub, token = server
    from huggingface_hub.lfs import UploadInfo, post_lfs_batch_info

    data = os.urandom(3 * MB + 17)
    info = UploadInfo(sha256=hashlib.sha256(data).digest(), size=len(data), sample=data[:512])
    batch = lambda: post_lfs_batch_info(upload_infos=[info], token=token, repo_type="model", repo_id=repo,  # noqa: E731
                                        endpoint=hub.url)[0][0]
    path = "/" + batch()["actions"]["upload"]["href"].split("/", 3)[3]
    head = _head(hub.url, "PUT", path, None, len(data), "application/octet-stream")
    cuts = [0, 1, 4096, 70000, MB + 3, 2 * MB, len(data) - 5]
    pieces = [head + data[:1]] + [data[a:b] for a, b in zip(cuts[1:], cuts[2:])]
    pieces.append(data[cuts[-1]:] + b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    with socket.create_connection(host_port(hub.url), timeout=30) as sock:
        for piece in pieces:
            sock.sendall(piece)
            time.sleep(0.01)
        got = b""
        while got.count(b"HTTP/1.1 ") < 2 or not got.rstrip().endswith(b"}"):
            part = sock.recv(65536)
            assert part, got
            got += part
    first, second = got.split(b"HTTP/1.1 ")[1:3]
    assert first.startswith(b"200") and second.startswith(b"200") and b'"ok"' in second, got
    assert "actions" not in batch()  # stored whole: nothing left to upload
    assert_healthy(hub.url)


# --- timeouts ------------------------------------------------------------------------------------

def _closed_after(sock: socket.socket, limit: float) -> tuple[float, bytes]:
    """Seconds until the server closed `sock` (reading whatever it sent), or `limit` if it did not."""
    started = time.monotonic()
    got = b""
    sock.settimeout(0.2)
    while time.monotonic() - started < limit:
        try:
            part = sock.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            break
        if not part:
            break
        got += part
    return time.monotonic() - started, got


def test_idle_connection_is_closed_after_the_header_timeout(server) -> None:
    hub, _ = server
    with socket.create_connection(host_port(hub.url)) as sock:
        waited, got = _closed_after(sock, 15)
    assert waited < HEADER_TIMEOUT + 3, f"an idle connection stayed open {waited:.1f} s"
    assert got == b"" or got.startswith(b"HTTP/1.1 408")


def test_trickled_headers_are_cut_at_the_header_timeout(server) -> None:
    hub, _ = server
    head = _head(hub.url, "GET", "/health")
    with socket.create_connection(host_port(hub.url)) as sock:
        started = time.monotonic()
        closed = False
        for byte in head[:-2]:  # never finishes the head; one byte every 0.1 s keeps it "active"
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                closed = True
                break
            time.sleep(0.1)
            if time.monotonic() - started > 15:
                break
        waited, _ = _closed_after(sock, 1) if not closed else (0.0, b"")
    assert closed or waited < 1, "the server kept a trickled request head open"
    assert time.monotonic() - started < HEADER_TIMEOUT + 3


@pytest.mark.parametrize("authenticated", [False, True], ids=["anonymous-json", "authenticated-commit"])
def test_stalled_or_trickled_bodies_are_cut(server, repo: str, authenticated: bool) -> None:
    hub, token = server
    if authenticated:  # a commit body that stops arriving
        head = _head(hub.url, "POST", f"/api/models/{repo}/commit/main", token, 10_000, "application/x-ndjson")
        trickle = b"{"
    else:  # a JSON body sent one byte at a time, forever
        head = _head(hub.url, "POST", "/api/validate-yaml", None, 10_000)
        trickle = b" " * 200
    with socket.create_connection(host_port(hub.url)) as sock:
        sock.sendall(head)
        started = time.monotonic()
        for byte in trickle:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
            time.sleep(0.1)
            if time.monotonic() - started > IDLE_TIMEOUT + 3:
                break
        waited, got = _closed_after(sock, 15)
    total = time.monotonic() - started
    assert total < IDLE_TIMEOUT + 5, f"a half-sent body held the connection {total:.1f} s"
    assert got == b"" or got.startswith(b"HTTP/1.1 408"), got[:200]
    assert_healthy(hub.url)


def test_a_client_that_never_reads_is_dropped(server, repo: str) -> None:
    hub, token = server
    HfApi(endpoint=hub.url, token=token).upload_file(path_or_fileobj=os.urandom(32 * MB), path_in_repo="r.bin",
                                                     repo_id=repo)
    with socket.create_connection(host_port(hub.url)) as sock:
        sock.sendall(_head(hub.url, "GET", f"/{repo}/resolve/main/r.bin"))
        time.sleep(IDLE_TIMEOUT + 3)  # read nothing: the socket buffers fill and the server's writes stall
        _, got = _closed_after(sock, 30)  # then read as fast as possible: only what was buffered comes
    assert len(got) < 32 * MB, "the server kept a stalled download open"
    assert_healthy(hub.url)


# --- many slow clients ---------------------------------------------------------------------------

class SlowClients:
    """`n` sockets from 127.0.0.2-11 that idle, trickle a head, or trickle a body; each reconnects
    when the server drops it, until `stop` is set. Bounded: `n` sockets, one thread."""

    def __init__(self, url: str, n: int) -> None:
        self.addr, self.n = host_port(url), n
        self.stop = threading.Event()
        self.dropped = 0
        self.thread = threading.Thread(target=self.run, daemon=True)

    def _open(self, i: int) -> tuple[socket.socket, bytes] | None:
        kind = i % 3
        payload = {0: b"",
                   1: b"GET /api/models HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 10_000,
                   2: b"POST /api/validate-yaml HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b" " * 10_000}[kind]
        try:
            sock = socket.create_connection(self.addr, timeout=2, source_address=(f"127.0.0.{2 + i % 10}", 0))
            sock.setblocking(False)
            return sock, payload
        except OSError:
            return None

    def run(self) -> None:
        conns: dict[int, tuple[socket.socket, bytes] | None] = {i: self._open(i) for i in range(self.n)}
        while not self.stop.is_set():
            for i, conn in list(conns.items()):
                if conn is None:
                    conns[i] = self._open(i)
                    continue
                sock, rest = conn
                try:
                    if rest:
                        sock.send(rest[:1])
                        conns[i] = (sock, rest[1:])
                    elif sock.recv(1) == b"":
                        raise ConnectionResetError
                except BlockingIOError:
                    pass
                except OSError:
                    sock.close()
                    self.dropped += 1
                    conns[i] = None
            self.stop.wait(0.2)
        for conn in conns.values():
            if conn:
                conn[0].close()

    def __enter__(self) -> "SlowClients":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)


def _normal_work(url: str, token: str, repo: str, seconds: float, tmp: Path) -> tuple[int, list[str]]:
    api = HfApi(endpoint=url, token=token)
    done, failures = 0, []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            name = f"n-{done}.txt"
            api.upload_file(path_or_fileobj=name.encode(), path_in_repo=name, repo_id=repo)
            assert api.model_info(repo).sha
            got = hf_hub_download(repo, name, endpoint=url, token=token, cache_dir=tmp)
            assert Path(got).read_bytes() == name.encode()
            assert raw(url, "GET", "/health", timeout=10)[0] == 200  # a brand-new connection each time
            done += 1
        except Exception as e:  # noqa: BLE001 - every failure is reported by the assertion below
            failures.append(f"{type(e).__name__}: {e}"[:300])
    return done, failures


def test_200_slow_clients_beside_normal_ones(server, repo: str, tmp_path: Path) -> None:
    hub, token = server
    started = time.monotonic()
    with SlowClients(hub.url, 200) as slow:
        time.sleep(1)
        done, failures = _normal_work(hub.url, token, repo, 8, tmp_path)
    print(f"200 slow clients: {done} normal rounds in 8 s, {slow.dropped} slow connections dropped by the server")
    assert failures == []
    assert done >= 3
    assert slow.dropped >= 100, "the server never timed the slow clients out"
    assert time.monotonic() - started < 25
    assert_healthy(hub.url)


FLOOD = """
import socket, sys, time
net, count, hold, host, port = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], int(sys.argv[5])
socks, deadline = [], time.monotonic() + hold
for i in range(count):
    if time.monotonic() > deadline - 1:
        break
    s = socket.socket()
    s.settimeout(1)
    try:
        s.bind((f"127.{net}.{i // 250}.{1 + i % 250}", 0))
        s.connect((host, port))
        socks.append(s)
    except OSError:
        s.close()
print(len(socks), flush=True)
while time.monotonic() < deadline:
    time.sleep(0.1)
"""


def test_a_flood_of_21000_connection_attempts_does_not_lock_normal_clients_out(server, repo: str, tmp_path: Path) -> None:
    hub, token = server
    host, port = host_port(hub.url)
    floods = [subprocess.Popen([sys.executable, "-c", FLOOD, str(10 + k), "7000", "14", host, str(port)],
                               stdout=subprocess.PIPE, text=True) for k in range(3)]
    try:
        time.sleep(3)
        done, failures = _normal_work(hub.url, token, repo, 8, tmp_path)
    finally:
        opened = [int((f.communicate(timeout=30)[0] or "0").strip() or 0) for f in floods]
    print(f"flood: {sum(opened)} connections opened, {done} normal rounds meanwhile")
    assert sum(opened) >= 15_000, opened  # a connect the full accept queue dropped times out and is not counted
    assert failures == []
    assert done >= 3
    assert_healthy(hub.url)
