"""Fixtures for the local Hub tests: a real server subprocess on 127.0.0.1 and real tokens.

Everything talks to the server through the unmodified `huggingface_hub` client, with Xet turned
off the way the publisher does it (contract §2).
"""
from __future__ import annotations

import os

os.environ["HF_HUB_DISABLE_XET"] = "1"  # before huggingface_hub is imported anywhere in this session
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from dataclasses import dataclass  # noqa: E402
from typing import Iterator  # noqa: E402

import pytest  # noqa: E402

from .hub_helpers import unique  # noqa: E402
from tensorferry.publish.hub import LocalHub, create_token  # noqa: E402
from tensorferry.publish.hub_io import disable_xet_for  # noqa: E402


@dataclass
class Users:
    alice: str  # member of org "acme"
    bob: str
    carol: str  # member of "acme" too


@pytest.fixture(scope="session")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalHub]:
    # Tiny pages so every listing exercises Link paging.
    with LocalHub(tmp_path_factory.mktemp("hub-data"), page_size=3) as server:
        assert disable_xet_for(server.url)
        yield server


@pytest.fixture(scope="session")
def users(hub: LocalHub) -> Users:
    return Users(alice=create_token(hub.data_dir, "alice", org="acme"),
                 bob=create_token(hub.data_dir, "bob"),
                 carol=create_token(hub.data_dir, "carol", org="acme"))


@pytest.fixture(scope="session")
def api(hub: LocalHub, users: Users):
    from huggingface_hub import HfApi

    return HfApi(endpoint=hub.url, token=users.alice)


@pytest.fixture
def repo(api) -> str:
    """A fresh public model repo owned by alice."""
    repo_id = f"alice/{unique()}"
    api.create_repo(repo_id)
    return repo_id
