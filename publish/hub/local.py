"""Start a local Hub on demand: a `tensorferry hub serve` subprocess on a free loopback port.

>>> with LocalHub(tempfile.mkdtemp()) as hub:            # doctest: +SKIP
...     HfApi(endpoint=hub.url, token=create_token(hub.data_dir, "me")).whoami()["name"]
'me'
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from tensorferry.converters.errors import HubError


def default_data_dir() -> Path:
    """`$XDG_CACHE_HOME/tensorferry/hub`, i.e. `~/.cache/tensorferry/hub` by default."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "tensorferry" / "hub"


class LocalHub:
    """A local Hub server process on `data_dir`, stopped on exit of the `with` block.

    `url` is the endpoint for `HfApi(endpoint=...)`/`HF_ENDPOINT`; `pid` the server process
    (tests read its memory and kill it). Example:

        with LocalHub("/tmp/hub") as hub:
            publish(..., endpoint=hub.url)
    """

    def __init__(self, data_dir: str | os.PathLike[str] | None = None, host: str = "127.0.0.1",
                 port: int = 0, page_size: int = 1000, startup_timeout: float = 60.0,
                 log_level: str = "warning", header_timeout: float | None = None,
                 idle_timeout: float | None = None, max_connections: int | None = None,
                 env: dict[str, str] | None = None, durable: bool = True) -> None:
        self.data_dir = Path(data_dir).expanduser() if data_dir else default_data_dir()
        # Limits left None keep the server's defaults; `env` adds variables (e.g. TENSORFERRY_HUB_FAULTS).
        self.options = {"--header-timeout": header_timeout, "--idle-timeout": idle_timeout,
                        "--max-connections": max_connections}
        self.env = dict(env or {})
        self.durable = durable
        self.host, self.port, self.page_size = host, port, page_size
        self.startup_timeout, self.log_level = startup_timeout, log_level
        self.url = ""
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.data_dir / "server.log"

    @property
    def pid(self) -> int:
        if self.process is None:
            raise HubError("local hub", "not started")
        return self.process.pid

    def start(self) -> "LocalHub":
        """Spawn the server and wait until it listens; raises HubError with its log on failure."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        ready = Path(tempfile.mkdtemp(prefix="tf-hub-")) / "url"
        cmd = [sys.executable, "-m", "tensorferry.publish.hub", "serve", "--host", self.host,
               "--port", str(self.port), "--data-dir", str(self.data_dir), "--ready-file", str(ready),
               "--page-size", str(self.page_size), "--log-level", self.log_level]
        cmd += [x for flag, value in self.options.items() if value is not None for x in (flag, str(value))]
        cmd += [] if self.durable else ["--no-fsync"]
        env = dict(os.environ, PYTHONUNBUFFERED="1", **self.env)
        try:
            with open(self.log_path, "ab") as log:
                self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                                stdin=subprocess.DEVNULL)
            deadline = time.monotonic() + self.startup_timeout
            while not ready.exists():
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    tail = self.log_path.read_text(errors="replace")[-2000:]
                    raise HubError(self.data_dir, f"local Hub did not start:\n{tail}")
                time.sleep(0.05)
            self.url = ready.read_text().strip()
        finally:  # a server that never started (or died writing url.tmp) leaves no folder behind either
            shutil.rmtree(ready.parent, ignore_errors=True)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if the server has not exited within `timeout` seconds."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def kill(self) -> None:
        """SIGKILL without a chance to clean up: what a crash looks like."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def __enter__(self) -> "LocalHub":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


@contextmanager
def local_hub(data_dir: str | os.PathLike[str] | None = None, **kwargs: Any) -> Iterator[str]:
    """Context manager yielding the endpoint URL of a freshly started local Hub.

    Example: `with local_hub("/tmp/hub") as url: HfApi(endpoint=url, token=tok)`.
    """
    with LocalHub(data_dir, **kwargs) as hub:
        yield hub.url


def write_token(data_dir: str | os.PathLike[str], namespace: str) -> str:
    """A write token for NAMESPACE on the local Hub in DATA_DIR: a user of that name, or a member of that organisation.

    >>> write_token(tempfile.mkdtemp(), "alice").startswith("hf_")
    True
    """
    from .auth import create_token

    try:
        return create_token(data_dir, namespace)
    except ValueError:  # the namespace is an organisation: join it
        return create_token(data_dir, "tensorferry", org=namespace)


@contextmanager
def serving(namespace: str, data_dir: str | os.PathLike[str] | None = None) -> Iterator[tuple[str, str]]:
    """The local Hub over DATA_DIR (default: the ``hub serve`` one) on a free port: (url, write token for NAMESPACE).

    What ``publish --hub local`` and ``demo`` run in; the server stops on exit.
    """
    with LocalHub(data_dir) as server:
        yield server.url, write_token(server.data_dir, namespace)
