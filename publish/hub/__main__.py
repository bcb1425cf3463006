"""`python -m tensorferry.publish.hub serve|token create ...` (same as `tensorferry hub ...`)."""
from __future__ import annotations

import argparse
import sys

from tensorferry.converters.errors import TensorferryError

from .cli import add_subparser


def main(argv: list[str] | None = None) -> int:
    # Named like the real command: `python -m tensorferry.publish.hub X` is `tensorferry hub X`.
    parser = argparse.ArgumentParser(prog="tensorferry")
    sub = parser.add_subparsers(dest="command", required=True)
    add_subparser(sub)
    args = parser.parse_args(["hub", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.func(args))
    except TensorferryError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code


if __name__ == "__main__":
    sys.exit(main())
