"""How many slow clients the local Hub tolerates while a normal client keeps working.

For each N: N slowloris connections (a third idle, a third trickling a request head, a third
trickling a JSON body; each reconnects as soon as the server drops it, from many loopback source
addresses) are held against a server with default limits, while one unmodified `huggingface_hub`
client loops upload + model_info + download + a fresh-connection /health for a fixed time.
Reports the normal client's rounds, failures and slowest round, and the server's memory.
Loopback only; every loop is bounded in count and time.

    python tests/benchmarks/hub_slow_clients.py                    # N = 200 2000 10000 20000
    python tests/benchmarks/hub_slow_clients.py --slow 500 --seconds 10
"""
from __future__ import annotations

import os

os.environ["HF_HUB_DISABLE_XET"] = "1"  # the local Hub does not speak Xet
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import argparse  # noqa: E402
import http.client  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from huggingface_hub import HfApi, hf_hub_download  # noqa: E402

from tensorferry.publish.hub import LocalHub, create_token  # noqa: E402

PER_PROCESS = 5000  # sockets per slow-client process (stays under a 20k descriptor limit)
SLOW = r"""
import errno, socket, sys, time
net, count, seconds, host, port = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], int(sys.argv[5])
HEAD = b"GET /api/models HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 10000
BODY = b"POST /api/validate-yaml HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b" " * 10000
def open_one(i):
    s = socket.socket()
    s.setblocking(False)
    try:
        s.bind((f"127.{net}.{i // 250 % 250}.{1 + i % 250}", 0))
        s.connect_ex((host, port))
    except OSError:
        s.close()
        return None
    return [s, (b"", HEAD, BODY)[i % 3]]
conns = {i: open_one(i) for i in range(count)}
dropped, deadline = 0, time.monotonic() + seconds
while time.monotonic() < deadline:
    for i, c in conns.items():
        if c is None:
            conns[i] = open_one(i)
            continue
        s, rest = c
        try:
            if s.recv(1) == b"":
                raise ConnectionResetError
        except BlockingIOError:
            pass
        except OSError as e:
            if getattr(e, "errno", None) not in (errno.ENOTCONN,):
                s.close(); dropped += 1; conns[i] = None
                continue
        try:
            if rest:
                s.send(rest[:1]); c[1] = rest[1:]
        except (BlockingIOError, OSError):
            pass
    time.sleep(0.2)
print(dropped, flush=True)
"""


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return 0.0


def normal_rounds(url: str, token: str, repo: str, seconds: float, cache: Path,
                  prefix: str) -> tuple[int, list[str], float]:
    api = HfApi(endpoint=url, token=token)
    done, failures, slowest = 0, [], 0.0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.monotonic()
        try:
            name = f"{prefix}-{done}-{len(failures)}.txt"
            api.upload_file(path_or_fileobj=name.encode(), path_in_repo=name, repo_id=repo)
            api.model_info(repo)
            assert Path(hf_hub_download(repo, name, endpoint=url, token=token, cache_dir=cache)).read_bytes() == name.encode()
            host, port = url.rsplit("/", 1)[-1].split(":")
            conn = http.client.HTTPConnection(host, int(port), timeout=30)
            conn.request("GET", "/health")
            assert conn.getresponse().status == 200
            conn.close()
            done += 1
        except Exception as e:  # noqa: BLE001 - counted and printed
            failures.append(f"{type(e).__name__}: {e}"[:200])
        slowest = max(slowest, time.monotonic() - started)
    return done, failures, slowest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slow", type=int, nargs="+", default=[200, 2000, 10000, 20000])
    parser.add_argument("--seconds", type=float, default=15.0, help="normal work per N")
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="tf-hub-slow-"))
    token = create_token(data, "alice")
    print("| slow clients | normal rounds | failed | slowest round | slow connections dropped | server RssAnon |")
    print("|---|---|---|---|---|---|")
    with LocalHub(data) as hub:
        HfApi(endpoint=hub.url, token=token).create_repo("alice/slow")
        host, port = hub.url.rsplit("/", 1)[-1].split(":")
        for n in args.slow:
            procs = [subprocess.Popen([sys.executable, "-c", SLOW, str(20 + k), str(min(PER_PROCESS, n - k * PER_PROCESS)),
                                       str(args.seconds + 5), host, port], stdout=subprocess.PIPE, text=True)
                     for k in range(-(-n // PER_PROCESS))]
            time.sleep(4)
            done, failures, slowest = normal_rounds(hub.url, token, "alice/slow", args.seconds,
                                                    Path(tempfile.mkdtemp(prefix="tf-hub-slow-cache-")), f"n{n}")
            mem = rss_mb(hub.pid)
            dropped = sum(int((p.communicate(timeout=60)[0] or "0").strip() or 0) for p in procs)
            print(f"| {n} | {done} | {len(failures)} | {slowest:.1f} s | {dropped} | {mem:.0f} MB |", flush=True)
            for f in failures[:3]:
                print(f"    {f}")
            time.sleep(2)


if __name__ == "__main__":
    main()
