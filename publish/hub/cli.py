"""`tensorferry hub serve` and `tensorferry hub token create`.

The main CLI calls `add_subparser(subparsers)`; each leaf sets `func(args) -> exit code`.

>>> import argparse
>>> p = argparse.ArgumentParser(); add_subparser(p.add_subparsers())
>>> p.parse_args(["hub", "token", "create", "--user", "me"]).user
'me'
"""
from __future__ import annotations

import argparse
import errno
import json
import sys
from pathlib import Path

from tensorferry.converters.constants import LOCAL_HUB_PORT
from tensorferry.converters.errors import HubError, InputError

from .limits import Limits
from .local import default_data_dir


def add_subparser(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register `hub serve` and `hub token create` on the main CLI's subparsers."""
    hub = subparsers.add_parser("hub", help="run the local Hub (offline default and test peer)",
                                description="A Hub-compatible server for air-gapped use, CI and trials.")
    sub = hub.add_subparsers(dest="hub_command", metavar="{serve,token}", required=True)

    serve = sub.add_parser("serve", help="serve the Hub API and web pages over HTTP")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=LOCAL_HUB_PORT, help=f"port, 0 for any free one (default: {LOCAL_HUB_PORT})")
    serve.add_argument("--data-dir", type=Path, default=None,
                       help=f"where repositories live (default: {default_data_dir()})")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    defaults = Limits()
    serve.add_argument("--header-timeout", type=float, default=defaults.header_timeout, metavar="S",
                       help=f"seconds a request head may take to arrive (default: {defaults.header_timeout:g})")
    serve.add_argument("--idle-timeout", type=float, default=defaults.idle_timeout, metavar="S",
                       help="seconds a request body may stall, or a JSON body take in all, or a client not "
                            f"read a response (default: {defaults.idle_timeout:g})")
    serve.add_argument("--max-connections", type=int, default=defaults.max_connections, metavar="N",
                       help=f"open connections at most (default: {defaults.max_connections})")
    serve.add_argument("--no-fsync", dest="durable", action="store_false",
                       help="do not fsync uploads and commits (throwaway Hubs: tests, benchmarks); a killed server "
                            "still never shows half a commit, a machine crash may lose the last ones")
    serve.add_argument("--page-size", type=int, default=1000, help=argparse.SUPPRESS)
    serve.add_argument("--ready-file", default=None, help=argparse.SUPPRESS)
    serve.set_defaults(func=cmd_serve)

    token = sub.add_parser("token", help="manage access tokens")
    token_sub = token.add_subparsers(dest="token_command", metavar="{create}", required=True)
    create = token_sub.add_parser("create", help="create a user (and organisation) and print a new token")
    create.add_argument("--user", required=True, help="user name; created if new")
    create.add_argument("--org", default=None, help="organisation the user joins; created if new")
    create.add_argument("--data-dir", type=Path, default=None, help="same data dir as the server's")
    create.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    create.set_defaults(func=cmd_token_create)


def cmd_serve(args: argparse.Namespace) -> int:
    from .server import serve

    data_dir = args.data_dir or default_data_dir()
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: serving on {args.host}: plain HTTP, tokens travel unencrypted", file=sys.stderr)
    if min(args.header_timeout, args.idle_timeout) <= 0 or args.max_connections < 1:
        raise InputError("hub serve", "timeouts must be positive and --max-connections at least 1")
    limits = Limits(args.header_timeout, args.idle_timeout, args.max_connections)
    try:
        serve(data_dir, host=args.host, port=args.port, ready_file=args.ready_file,
              page_size=args.page_size, log_level=args.log_level, limits=limits, durable=args.durable)
    except ValueError as e:  # TENSORFERRY_HUB_FAULTS
        raise InputError("TENSORFERRY_HUB_FAULTS", str(e).removeprefix("TENSORFERRY_HUB_FAULTS: ")) from None
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise HubError(f"{args.host}:{args.port}", "address already in use; pick another --port") from None
        raise HubError(data_dir, str(e)) from None
    except KeyboardInterrupt:
        pass
    return 0


def cmd_token_create(args: argparse.Namespace) -> int:
    from .auth import create_token

    data_dir = args.data_dir or default_data_dir()
    try:
        token = create_token(data_dir, args.user, args.org)
    except ValueError as e:
        raise InputError(args.user if not args.org else f"{args.user}/{args.org}", str(e)) from None
    if args.json:
        print(json.dumps({"user": args.user, "org": args.org, "data_dir": str(data_dir), "token": token}))
    else:
        member = f" (member of {args.org})" if args.org else ""
        print(f"Token for {args.user}{member} on {data_dir}; it is shown only once:")
        print(token)
    return 0
