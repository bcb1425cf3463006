"""``tensorferry demo``: the main job on its embedded default, with nothing to download.

It converts the bundled fixture checkpoints to every framework and reports what was written;
the verification and publishing steps join it as they land.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from tensorferry.converters import convert
from tensorferry.fixtures import FAMILIES, checkpoint_dir


def add_subparser(subparsers) -> None:
    p = subparsers.add_parser("demo", help="convert the bundled fixture models to every framework (no download)")
    p.add_argument("--out", default="tensorferry-demo", help="output folder (default: ./tensorferry-demo)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(func=cmd_demo)


def run(out: Path) -> dict:
    """Convert every fixture family into ``out/<family>``; returns the reports by family."""
    reports = {}
    for family in sorted(FAMILIES):
        result = convert(checkpoint_dir(family), out / family, to=["pt", "tf", "flax"])
        reports[family] = result.to_json()
    return reports


def cmd_demo(args: argparse.Namespace) -> int:
    out = Path(args.out)
    reports = run(out)
    if args.json:
        print(json.dumps(reports, indent=2))
        return 0
    for family, report in reports.items():
        print(f"{family}: {report['source']} ({report['source_framework']}) → {report['out_dir']}")
        for fw, o in report["outputs"].items():
            print(f"  {fw:5} {', '.join(o['files'])}  {o['tensors']} tensors, {o['bytes']:,} bytes")
    print(f"done: {out.resolve()}")
    return 0
