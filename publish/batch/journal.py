"""The batch journal: one SQLite row per repo with its state, in WAL mode, written by the coordinator only.

States: ``planned`` → ``converting`` → ``verified`` → ``pushed`` (with the PR or commit URL), or
``skipped`` (reason) / ``failed`` (error).  Every change is one committed transaction, so after a
``kill -9`` the journal holds the last state reached; ``run`` is the token put in the PR's marker,
kept across a resume so a PR that landed just before the kill is recognised as this run's.

>>> import tempfile, os
>>> j = Journal(os.path.join(tempfile.mkdtemp(), "j.db"))
>>> j.set("acme/a", "planned", head="a" * 40, run="r1")
>>> j.set("acme/a", "pushed", url="http://hub/acme/a/discussions/1", added=["tf"])
>>> row = j.get("acme/a"); row["state"], row["added"], row["run"]
('pushed', ['tf'], 'r1')
>>> j.mode()
'wal'
"""
from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

STATES = ("planned", "converting", "verified", "pushed", "skipped", "failed")
IN_FLIGHT = ("converting", "verified")
JSON_FIELDS = ("added", "deltas")
COLUMNS = ("repo_id", "state", "head", "run", "source", "added", "deltas", "url", "seconds", "reason", "error",
           "exit_code", "attempts", "updated")

SCHEMA = """
CREATE TABLE IF NOT EXISTS repos (
    repo_id TEXT PRIMARY KEY, state TEXT NOT NULL, head TEXT, run TEXT, source TEXT,
    added TEXT, deltas TEXT, url TEXT, seconds REAL, reason TEXT, error TEXT, exit_code INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0, updated REAL NOT NULL
)"""


class Journal:
    """The state of every repo of a batch run, in one SQLite file (WAL: readers never block the writer)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")  # a crashed machine, not just a killed process, keeps the state
        self.db.execute(SCHEMA)

    def mode(self) -> str:
        """The SQLite journal mode (``wal``)."""
        return self.db.execute("PRAGMA journal_mode").fetchone()[0]

    def get(self, repo_id: str) -> dict[str, Any] | None:
        """The repo's row as a dict (JSON fields decoded), or None."""
        row = self.db.execute("SELECT * FROM repos WHERE repo_id=?", (repo_id,)).fetchone()
        return _decode(row) if row else None

    def rows(self, repo_ids: list[str] | None = None) -> list[dict[str, Any]]:
        """Every row (or those of REPO_IDS), in repo id order."""
        rows = [_decode(r) for r in self.db.execute("SELECT * FROM repos ORDER BY repo_id")]
        return rows if repo_ids is None else [r for r in rows if r["repo_id"] in set(repo_ids)]

    def set(self, repo_id: str, state: str, **fields: Any) -> None:
        """Move REPO_ID to STATE, updating FIELDS (the others keep their value); one transaction."""
        if state not in STATES:
            raise ValueError(f"unknown state {state!r}")
        bad = set(fields) - set(COLUMNS)
        if bad:
            raise ValueError(f"unknown journal fields {sorted(bad)}")
        values = {k: json.dumps(v) if k in JSON_FIELDS and v is not None else v for k, v in fields.items()}
        values.update(state=state, updated=time.time())
        names = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        update = ", ".join(f"{k}=excluded.{k}" for k in values)
        self.db.execute(f"INSERT INTO repos(repo_id, {names}) VALUES(?, {marks}) "
                        f"ON CONFLICT(repo_id) DO UPDATE SET {update}", (repo_id, *values.values()))

    def close(self) -> None:
        self.db.close()


def _decode(row: sqlite3.Row) -> dict[str, Any]:
    out = dict(row)
    for k in JSON_FIELDS:
        out[k] = json.loads(out[k]) if out[k] else None
    return out
