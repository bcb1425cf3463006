"""The batch report: one row per repo as Markdown, JSON and CSV, and a one-line summary.

Columns: repo, status, source framework, added frameworks, max |Δ| per framework (outputs) or
"weights only", PR/commit URL, seconds, reason or error.

>>> row = {"repo_id": "acme/a", "state": "pushed", "source": "pt", "added": ["tf", "flax"],
...        "deltas": {"tf": 2.5e-06, "flax": "weights only"}, "url": "http://hub/acme/a/discussions/1",
...        "seconds": 1.5, "reason": None, "error": None}
>>> report_row(row)["max_delta"]
'tf 2.5e-06, flax weights only'
>>> summary([report_row(row)], 3.2)
'1 repos in 3 s: 1 pushed, 0 skipped, 0 failed'
"""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

COLUMNS = ("repo", "status", "source", "added", "max_delta", "url", "seconds", "reason")
NAMES = {"repo": "repo", "status": "status", "source": "source", "added": "added", "max_delta": "max |Δ|",
         "url": "PR / commit", "seconds": "seconds", "reason": "reason / error"}


def _delta(deltas: dict[str, Any] | None) -> str:
    if not deltas:
        return ""
    return ", ".join(f"{fw} {v:.2g}" if isinstance(v, float) else f"{fw} {v if v is not None else 'n/a'}"
                     for fw, v in deltas.items())


def report_row(row: dict[str, Any]) -> dict[str, Any]:
    """A journal row → a report row (keys: COLUMNS, plus ``deltas`` as numbers for JSON)."""
    return {"repo": row["repo_id"], "status": row["state"], "source": row.get("source") or "",
            "added": ",".join(row.get("added") or []), "max_delta": _delta(row.get("deltas")),
            "url": row.get("url") or "", "seconds": row.get("seconds") or 0.0,
            "reason": row.get("error") or row.get("reason") or "", "deltas": row.get("deltas") or {},
            "exit_code": row.get("exit_code") or 0}


def summary(rows: Sequence[dict[str, Any]], seconds: float, earlier: int = 0) -> str:
    """One line: how many repos, in how long, and how many ended in each status."""
    count = {s: sum(r["status"] == s for r in rows) for s in ("pushed", "skipped", "failed")}
    other = len(rows) - sum(count.values())
    text = (f"{len(rows)} repos in {seconds:.0f} s: {count['pushed']} pushed"
            + (f" ({earlier} in an earlier run)" if earlier else "")
            + f", {count['skipped']} skipped, {count['failed']} failed")
    return text + (f", {other} unfinished" if other else "")


def markdown(rows: Sequence[dict[str, Any]], title: str, line: str) -> str:
    """The report as a Markdown table under TITLE, with the summary LINE."""
    out = [f"# {title}", "", line, "", "| " + " | ".join(NAMES[c] for c in COLUMNS) + " |",
           "|" + "---|" * len(COLUMNS)]
    for r in rows:
        cells = [str(r[c]).replace("|", "\\|").replace("\n", " ") for c in COLUMNS]
        if r["url"]:
            cells[COLUMNS.index("url")] = f"[{_link_text(r['url'])}]({r['url']})"
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def _link_text(url: str) -> str:
    """``PR #3`` for a discussion URL, ``commit 1a2b3c4d`` for a commit URL.

    >>> _link_text("http://hub/acme/a/discussions/3"), _link_text("http://hub/acme/a/commit/1a2b3c4d5e6f")
    ('PR #3', 'commit 1a2b3c4d')
    """
    kind, _, last = url.rstrip("/").rpartition("/")
    return f"PR #{last}" if kind.endswith("/discussions") else f"commit {last[:8]}"


def to_csv(rows: Sequence[dict[str, Any]]) -> str:
    """The report as CSV (header: COLUMNS)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def write_report(rows: Sequence[dict[str, Any]], folder: str | Path, title: str, line: str,
                 extra: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write ``report.md``, ``report.json`` and ``report.csv`` into FOLDER; returns their paths by format."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"md": folder / "report.md", "json": folder / "report.json", "csv": folder / "report.csv"}
    paths["md"].write_text(markdown(rows, title, line))
    paths["json"].write_text(json.dumps({"title": title, "summary": line, **(extra or {}), "repos": list(rows)},
                                        indent=2) + "\n")
    paths["csv"].write_text(to_csv(rows))
    return paths
