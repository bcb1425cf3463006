"""One hostile case: a builder that makes a bad input in a temporary folder, and what the CLI must say.

Every case expects exit code 2 (bad input, never 1 "internal error"), a message naming the
offending file (or option), and OUT exactly as it was before (no final file, no ``.partial``).
"""
from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Setup:
    """What a builder made: the SRC argument, extra CLI arguments and the OUT folder."""

    src: Path | str
    args: list[str] = field(default_factory=list)
    out: Path | None = None
    names: str | None = None  # what the message must name, when only the builder knows it


@dataclass(frozen=True)
class Case:
    id: str
    build: Callable[[Path], Setup]
    names: str | None = None  # a file name or option the message must contain (default: SRC's name)
    words: tuple[str, ...] = ()  # further words the message must contain
    needs: tuple[str, ...] = ()  # modules the case needs (torch for pickles)

    def missing(self) -> list[str]:
        return [m for m in self.needs if importlib.util.find_spec(m) is None]


def cases(prefix: str, table: dict[str, tuple], make: Callable[..., Callable[[Path], Setup]]) -> list[Case]:
    """Cases from a table ``id → (builder arguments..., names, words)``: the last two are always there."""
    return [Case(f"{prefix}-{key}", make(*row[:-2]), row[-2], tuple(row[-1])) for key, row in table.items()]
