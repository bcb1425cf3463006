"""The `tensorferry` command line."""
from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("tensorferry: under construction", file=sys.stderr)
    return 0
