"""A local Hub for the publishing tests: a real server subprocess, real tokens, the unmodified client."""
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

    def api(self, token: str | bool | None = None):
        return hub_api(self.url, self.token if token is None else token)

    def repo(self, stem: str = "model") -> str:
        return f"alice/{stem}-{next(_names)}"


@pytest.fixture(scope="session")
def hub(tmp_path_factory) -> Iterator[Target]:
    data = tmp_path_factory.mktemp("publish-hub")
    with LocalHub(data) as server:
        yield Target(server.url, create_token(data, "alice", org="acme"), str(data))


def commits(target: Target, repo_id: str, revision: str = "main") -> list[str]:
    return [c.commit_id for c in target.api().list_repo_commits(repo_id, revision=revision)]
