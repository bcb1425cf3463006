"""The ``tensorferry`` command line: one table of commands, each registered by the module that runs it.

Errors are typed (``tensorferry.converters.errors``); each class has its exit code: 0 ok,
1 internal error, 2 bad input or arguments (and a filesystem that refuses: full, read-only),
3 verification mismatch, 4 Hub error.

>>> parser().parse_args(["convert", "ckpt", "--out", "o"]).command
'convert'
>>> sorted(COMMANDS)
['batch', 'convert', 'demo', 'hub', 'publish', 'pull', 'verify']
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from tensorferry.converters import cli as convert_cli
from tensorferry.converters.errors import TensorferryError
from tensorferry.converters.verify import cli as verify_cli

from . import commands, demo, hub_io
from .batch import cli as batch_cli
from .hub import cli as hub_cli

# command → function registering it on the subparsers (in the order `--help` lists them)
COMMANDS: dict[str, Callable[[argparse._SubParsersAction], object]] = {
    "convert": convert_cli.add_subparser,
    "verify": lambda sub: verify_cli.add_subparser(sub, hub_io.resolve_args, hub_io.add_download_options),
    "publish": commands.add_publish,
    "pull": commands.add_pull,
    "batch": batch_cli.add_subparser,
    "hub": hub_cli.add_subparser,
    "demo": demo.add_subparser,
}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tensorferry")
    except PackageNotFoundError:
        return "unknown (not installed)"


def parser() -> argparse.ArgumentParser:
    """The whole command line."""
    p = argparse.ArgumentParser(prog="tensorferry", description="Move model weights between PyTorch, TensorFlow and Flax "
                                "layouts and publish them to the Hugging Face Hub.")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("--version", action="version", version=f"tensorferry {_version()}")
    sub = p.add_subparsers(dest="command", metavar="{" + ",".join(COMMANDS) + "}", required=True)
    for register in COMMANDS.values():
        register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser().parse_args(argv)
    except SystemExit as e:  # argparse printed the usage and the bad option: exit 2 (0 for --help)
        return e.code if isinstance(e.code, int) else 2
    args.argv = argv  # the command line as typed, for provenance (tokens redacted where it is recorded)
    try:
        return int(args.func(args) or 0)
    except TensorferryError as e:
        _say(f"error: {e}", args)
        return e.exit_code
    except BrokenPipeError:  # `tensorferry ... | head` closed the pipe: not an error
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as e:  # the filesystem refused (full, read-only, permissions): the user's to fix, not a bug
        if args.debug:
            raise
        _say(f"error: {e.filename or 'file system'}: {e.strerror or e}", args)
        return 2
    except MemoryError:
        print("error: out of memory (the largest tensor must fit in RAM)", file=sys.stderr)
        return 1
    except Exception as e:  # noqa: BLE001 - the CLI's last resort: say it is ours, not the user's
        if args.debug:
            raise
        _say(f"internal error: {type(e).__name__}: {e} (run with --debug for the traceback)", args)
        return 1


def _say(message: str, args: argparse.Namespace) -> None:
    """Print an error with any token (given, in HF_TOKEN, or token-shaped) replaced: messages quote URLs and headers."""
    print(hub_io.redact(message, getattr(args, "token", None), os.environ.get("HF_TOKEN")), file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
