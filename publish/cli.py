"""The ``tensorferry`` command line: convert, verify, publish, batch and hub.

Errors are typed (``tensorferry.converters.errors``); each class has its exit code: 0 ok,
1 internal error, 2 bad input, 3 verification mismatch, 4 Hub error.
"""
from __future__ import annotations

import argparse
import os
import sys

from tensorferry.converters import cli as convert_cli
from tensorferry.converters import verify_cli
from tensorferry.converters.errors import TensorferryError

from .hub import cli as hub_cli


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tensorferry", description="Move model weights between PyTorch, TensorFlow and Flax "
                                "layouts and publish them to the Hugging Face Hub.")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", metavar="{convert,verify,hub,demo}", required=True)
    convert_cli.add_subparser(sub)
    verify_cli.add_subparser(sub)
    hub_cli.add_subparser(sub)
    from . import demo

    demo.add_subparser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except TensorferryError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except BrokenPipeError:  # `tensorferry ... | head` closed the pipe: not an error
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - the CLI's last resort: say it is ours, not the user's
        if args.debug:
            raise
        print(f"internal error: {type(e).__name__}: {e} (run with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
