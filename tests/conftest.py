"""Shared helpers: run the CLI in-process, compare checkpoints bit for bit, a local Hub for a session."""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tensorferry.converters.checkpoint import open_source
from tensorferry.converters.dtypes import same_bits
from tensorferry.fixtures import FAMILIES, checkpoint_dir


@pytest.fixture
def cli(capsys):
    """Run ``tensorferry ARGS`` in-process; returns (exit code, stdout, stderr)."""
    from tensorferry.publish.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def assert_same_checkpoint(a: str | Path, b: str | Path) -> int:
    """Every tensor of ``a`` equals ``b``'s bit for bit, same names, dtypes and shapes."""
    x, y = open_source(a), open_source(b)
    assert set(x.infos) == set(y.infos), sorted(set(x.infos) ^ set(y.infos))
    for name in x.infos:
        assert same_bits(x.load(name), y.load(name)), name
    return len(x.infos)


FAMILY_NAMES = sorted(FAMILIES)
__all__ = ["assert_same_checkpoint", "checkpoint_dir", "FAMILY_NAMES"]


_names = itertools.count()


@dataclass
class Target:
    """The session's local Hub (a real server subprocess) and alice's token (alice is in org acme)."""

    url: str
    token: str
    data_dir: str

    def api(self, token: str | bool | None = None):
        """An HfApi on the Hub: alice's token, another one, or ``False`` for anonymous."""
        from tensorferry.publish.hub_io import hub_api

        return hub_api(self.url, self.token if token is None else token)

    def repo(self, stem: str = "model") -> str:
        """A fresh repo id in alice's namespace."""
        return f"alice/{stem}-{next(_names)}"

    def commits(self, repo_id: str, token: str | None = None, revision: str = "main") -> list:
        return list(self.api(token).list_repo_commits(repo_id, revision=revision))


@pytest.fixture(scope="session")
def hub(tmp_path_factory) -> Iterator[Target]:
    """One local Hub for the session's publishing tests (tests/hub has its own, configured per test)."""
    from tensorferry.publish.hub import LocalHub, create_token

    data = tmp_path_factory.mktemp("local-hub")
    with LocalHub(data) as server:
        yield Target(server.url, create_token(data, "alice", org="acme"), str(data))


@pytest.fixture(scope="session", autouse=True)
def _temp_under_basetemp(tmp_path_factory) -> Iterator[None]:
    """The temp folders of the code under test and of the subprocesses it starts go under pytest's
    basetemp, which a passing run removes (``tmp_path_retention_policy``): a CI run leaves /tmp as it was."""
    import tempfile

    tmp = str(tmp_path_factory.mktemp("tmp"))
    before = os.environ.get("TMPDIR"), tempfile.tempdir
    os.environ["TMPDIR"], tempfile.tempdir = tmp, tmp
    yield
    if before[0] is None:
        os.environ.pop("TMPDIR", None)
    else:
        os.environ["TMPDIR"] = before[0]
    tempfile.tempdir = before[1]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """With TENSORFERRY_NO_SKIPS=1 (set by tests/run.sh, which installs everything) a skip is a failure.

    The few skips in the suite are for machines without root, torch or atheris; where the `test`
    extra is installed and the run is root (CI), none applies, so a skip there would hide a test.
    """
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("TENSORFERRY_NO_SKIPS") == "1" and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"skipped where nothing may skip (TENSORFERRY_NO_SKIPS=1): {reason}"
