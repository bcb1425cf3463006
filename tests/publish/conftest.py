"""The publishing tests use the session's local Hub (``hub`` in tests/conftest.py)."""
from __future__ import annotations


def commits(target, repo_id: str, revision: str = "main") -> list[str]:
    return [c.commit_id for c in target.commits(repo_id, revision=revision)]
