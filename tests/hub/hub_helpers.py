"""Small helpers shared by the local Hub tests (imported as a plain module)."""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


def sha256_file(path: str | os.PathLike[str]) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def unique(prefix: str = "repo") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", int(parts.port or 80)


def raw(url: str, method: str, path: str, body: bytes | str = b"", token: str | None = None,
        headers: dict[str, str] | None = None, timeout: float = 30) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request with the standard library: no client-side checks, no retries."""
    conn = http.client.HTTPConnection(*host_port(url), timeout=timeout)
    hdrs = dict(headers or {})
    if token:
        hdrs["Authorization"] = f"Bearer {token}"
    try:
        conn.request(method, path, body=body.encode() if isinstance(body, str) else body, headers=hdrs)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def error_of(body: bytes) -> str:
    """The `error` message of a JSON error body (the server's answer for every 4xx)."""
    return str(json.loads(body)["error"])


def ndjson(*lines: Any) -> bytes:
    """A commit body: objects are dumped as JSON, bytes are sent as they are."""
    return b"".join((x if isinstance(x, bytes) else json.dumps(x).encode()) + b"\n" for x in lines)


def assert_healthy(url: str) -> None:
    """The server still answers /health and the API after whatever the test threw at it."""
    status, _, body = raw(url, "GET", "/health", timeout=10)
    assert (status, json.loads(body)) == (200, {"status": "ok"})
    status, _, _ = raw(url, "GET", "/api/models", timeout=10)
    assert status == 200


def rss_anon_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    raise AssertionError("no RssAnon in /proc status")


class PeakSampler(threading.Thread):
    """Samples a process's anonymous memory every 10 ms; `peak` holds the highest value (kB)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop = pid, 0, threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, rss_anon_kb(self.pid))
            time.sleep(0.01)

    def __enter__(self) -> "PeakSampler":
        self.baseline = rss_anon_kb(self.pid)
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.join()

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.baseline) / 1024


def send_streaming(url: str, head: bytes, chunks: Any, timeout: float = 60) -> tuple[int | None, bytes, int]:
    """Send a request head, then body chunks until the server answers or closes.

    Returns (status or None when the server closed without answering, response bytes, body bytes sent).
    The server may answer before the body is complete (a size cap): sending stops at the first answer.
    """
    sock = socket.create_connection(host_port(url), timeout=timeout)
    sent = 0
    got = b""
    try:
        sock.sendall(head)
        sock.setblocking(False)
        for chunk in chunks:
            try:
                got += sock.recv(65536)
                if got:
                    break
            except BlockingIOError:
                pass
            except OSError:
                break
            try:
                sock.setblocking(True)
                sock.sendall(chunk)
                sent += len(chunk)
            except OSError:  # the server closed its side: read what it answered
                break
            finally:
                sock.setblocking(False)
        sock.setblocking(True)
        sock.settimeout(timeout)
        while True:
            try:
                part = sock.recv(65536)
            except OSError:
                break
            if not part:
                break
            got += part
            if b"\r\n\r\n" in got and _complete(got):
                break
    finally:
        sock.close()
    status = int(got.split(b" ", 2)[1]) if got.startswith(b"HTTP/1.1 ") else None
    return status, got, sent


def _complete(response: bytes) -> bool:
    head, _, body = response.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":", 1)[1])
    return False
