"""``tensorferry demo``: the main job on its embedded default, with nothing to download.

It publishes the bundled fixture checkpoints to the local Hub: each is converted to every
framework, verified (weights always; outputs in each framework whose library is installed, the
rest reported as weights only) and pushed with its shared card in one commit.  Then it prints
where to browse them.  Run it again: the repos already hold those files, so nothing is committed.

>>> import argparse
>>> p = argparse.ArgumentParser(); _ = add_subparser(p.add_subparsers())
>>> p.parse_args(["demo", "--namespace", "me"]).namespace
'me'
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from typing import TYPE_CHECKING

from tensorferry.converters.constants import LOCAL_HUB_PORT

from .hub.local import default_data_dir

if TYPE_CHECKING:
    from .publisher import PublishResult

SERVE_URL = f"http://127.0.0.1:{LOCAL_HUB_PORT}"


def add_subparser(subparsers) -> argparse.ArgumentParser:
    """Register ``demo``."""
    p = subparsers.add_parser("demo", help="publish the bundled fixture models to the local Hub (no download)")
    p.add_argument("--hub-data-dir", default=None, help=f"the local Hub's data (default: {default_data_dir()})")
    p.add_argument("--namespace", default="tensorferry", help="owner of the demo repos (default: tensorferry)")
    p.add_argument("--verify", default="auto", choices=["auto", "weights"],
                   help="auto: outputs too where the frameworks are installed (default); weights: weights only")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(func=cmd_demo)
    return p


def run(data_dir: str | Path | None = None, namespace: str = "tensorferry", quiet: bool = False,
        verify: str = "auto") -> dict[str, PublishResult]:
    """Publish every fixture family to ``{namespace}/tiny-{family}`` on the local Hub over DATA_DIR."""
    from tensorferry.fixtures import FAMILIES, checkpoint_dir

    from .hub.local import serving
    from .publisher import publish

    results = {}
    with serving(namespace, data_dir) as (url, token):
        for family in sorted(FAMILIES):
            results[family] = publish(checkpoint_dir(family), f"{namespace}/tiny-{family}", endpoint=url, token=token,
                                      command=f"tensorferry demo --namespace {namespace}", verify=verify, quiet=quiet)
    return results


def cmd_demo(args: argparse.Namespace) -> int:
    """Run ``demo`` with parsed arguments."""
    data_dir = Path(args.hub_data_dir or default_data_dir())
    results = run(data_dir, args.namespace, quiet=args.json, verify=args.verify)
    serve = f"tensorferry hub serve --data-dir {data_dir}"
    if args.json:
        print(json.dumps({"serve": serve, "repos": {f: r.to_json() for f, r in results.items()}}, indent=2))
        return 0
    for family, r in results.items():
        done = "nothing to publish (already there)" if r.no_op else f"one commit {r.commit_oid[:12]}"
        verdict = f"; verification {r.verification.verdict()}" if r.verification else ""
        print(f"{family}: {r.repo_id}: {done}{verdict}")
    print(f"browse them: {serve}\n  then open {SERVE_URL}/ (the repos: "
          + ", ".join(f"{SERVE_URL}/{r.repo_id}" for r in results.values()) + ")")
    return 0
