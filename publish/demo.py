"""``tensorferry demo``: the main job on its embedded default, with nothing to download.

It converts the bundled fixture checkpoints to every framework, verifies every variant (weights
always; outputs in each framework whose library is installed) and reports what was written.
Publishing to the local Hub joins it with the publishing issue.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import importlib.util

from tensorferry.converters import convert
from tensorferry.converters.verify.run import verify_dir
from tensorferry.fixtures import FAMILIES, checkpoint_dir

# Functional checks need each framework's library; conversion and the weights check need none.
LIBRARIES = {"pt": "torch", "tf": "tf_keras", "flax": "flax"}


def add_subparser(subparsers) -> None:
    p = subparsers.add_parser("demo", help="convert the bundled fixture models to every framework (no download)")
    p.add_argument("--out", default="tensorferry-demo", help="output folder (default: ./tensorferry-demo)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(func=cmd_demo)


def run(out: Path) -> dict:
    """Convert and verify every fixture family into ``out/<family>``; returns the reports by family."""
    functional = all(importlib.util.find_spec(lib) for lib in LIBRARIES.values())
    reports = {}
    for family in sorted(FAMILIES):
        result = convert(checkpoint_dir(family), out / family, to=["pt", "tf", "flax"])
        report = result.to_json()
        verification = verify_dir(out / family, reference=checkpoint_dir(family), frameworks=["pt", "tf", "flax"],
                                  functional=functional)
        report["verification"] = {"passed": verification.passed, "complete": verification.complete, "functional": functional,
                                  "summary": verification.summary()}
        reports[family] = report
    return reports


def cmd_demo(args: argparse.Namespace) -> int:
    out = Path(args.out)
    reports = run(out)
    passed = all(r["verification"]["passed"] for r in reports.values())
    if args.json:
        print(json.dumps(reports, indent=2))
        return 0 if passed else 3
    for family, report in reports.items():
        print(f"{family}: {report['source']} ({report['source_framework']}) → {report['out_dir']}")
        for fw, o in report["outputs"].items():
            print(f"  {fw:5} {', '.join(o['files'])}  {o['tensors']} tensors, {o['bytes']:,} bytes")
        print("  " + report["verification"]["summary"].replace("\n", "\n  "))
    if not next(iter(reports.values()))["verification"]["functional"]:
        print("outputs not compared: install the frameworks with pip install -e '.[all]' to run each variant")
    print(f"done: {out.resolve()}" if passed else "verification FAILED")
    return 0 if passed else 3
