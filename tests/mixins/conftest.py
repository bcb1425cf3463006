"""The mixin tests use the session's local Hub (``hub`` in tests/conftest.py); HF_ENDPOINT points at it
during each test, as a user's environment would."""
from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _endpoint(hub, monkeypatch) -> None:
    """Each test sees HF_ENDPOINT pointing at the local Hub; nothing leaks to other test folders."""
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
