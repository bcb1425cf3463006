"""A local Hub for the mixin tests (a real server subprocess, the unmodified client); HF_ENDPOINT points at it
during each test, as a user's environment would."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tensorferry.publish.hub import LocalHub, create_token
from tensorferry.publish.hub_io import hub_api

_names = itertools.count()


@dataclass
class Target:
    url: str
    token: str  # alice's
    data_dir: str

    def api(self, token: str | None = None):
        return hub_api(self.url, token or self.token)

    def repo(self, stem: str = "model") -> str:
        return f"alice/{stem}-{next(_names)}"

    def commits(self, repo_id: str, token: str | None = None) -> list:
        return list(self.api(token).list_repo_commits(repo_id))


@pytest.fixture(scope="session")
def hub(tmp_path_factory) -> Iterator[Target]:
    data = tmp_path_factory.mktemp("mixins-hub")
    with LocalHub(data) as server:
        yield Target(server.url, create_token(data, "alice"), str(data))


@pytest.fixture(autouse=True)
def _endpoint(hub, monkeypatch) -> None:
    """Each test sees HF_ENDPOINT pointing at the local Hub; nothing leaks to other test folders."""
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
