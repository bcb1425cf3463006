"""``tensorferry verify DIR``: check every variant's weights and outputs; exit 0, 3 or 2.

    tensorferry verify out/                                   # the variants in out/ against out/model.safetensors
    tensorferry verify out/ --reference ckpt/ --frameworks tf,flax --atol 1e-4
    tensorferry verify out/ --model pt=mypkg.models:torch_model --model tf=mypkg.models:keras_model

``publish`` registers the same command with a resolver for Hub repo ids (``verify user/repo``).

>>> import argparse
>>> p = argparse.ArgumentParser(); _ = add_subparser(p.add_subparsers())
>>> a = p.parse_args(["verify", "out", "--model", "pt=m:f", "--model", "tf=m:g"])
>>> parse_models(a.model)
{'pt': 'm:f', 'tf': 'm:g'}
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from ..constants import ALIASES, DEFAULT_TIMEOUT, FRAMEWORKS, parse_frameworks
from ..errors import InputError

# (target, frameworks, args) -> (local folder, repo record or None): how a DIR_OR_REPO becomes a folder.
Resolver = Callable[[str, "list[str] | None", argparse.Namespace], "tuple[Path, dict | None]"]


def _local(target: str, frameworks: list[str] | None, args: argparse.Namespace) -> tuple[Path, None]:
    return Path(target), None


def add_subparser(subparsers, resolve: Resolver | None = None,
                  add_hub_options: Callable[[argparse.ArgumentParser], None] | None = None) -> argparse.ArgumentParser:
    """Register ``verify``; ``resolve`` (with its ``add_hub_options``) lets it take Hub repo ids too."""
    p = subparsers.add_parser("verify", help="check converted variants: weights bit-exact, outputs within tolerance",
                              description=__doc__.split(">>>")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target", metavar="DIR_OR_REPO" if resolve else "DIR",
                   help="a converted checkpoint folder" + (" or a Hub repo id" if resolve else ""))
    p.add_argument("--reference", help="the conversion's source (default: the PyTorch weights in DIR)")
    p.add_argument("--frameworks", help="comma-separated subset of pt,tf,flax (default: every variant present)")
    p.add_argument("--atol", type=float, help="max |Δ| allowed per output (default by dtype: fp32 5e-5; see docs/verify.md)")
    p.add_argument("--model", action="append", metavar="FW=MODULE:FACTORY",
                   help="model class factory per framework (repeat), or 'transformers' to force transformers classes")
    p.add_argument("--inputs", help=".npz of model inputs in PyTorch layout (default: seeded inputs chosen from the model)")
    p.add_argument("--seed", type=int, default=0, help="seed of the default inputs")
    p.add_argument("--dtype", help="the --dtype the conversion used (default: accept one consistent float cast)")
    p.add_argument("--weights-only", action="store_true", help="skip the functional level (reported as weights only)")
    p.add_argument("--require-outputs", action="store_true",
                   help="exit 3 unless outputs were compared in every framework (a weights-only run fails)")
    p.add_argument("--transformers-python", help="python of an environment with transformers 4.57.6 "
                   "(default: the one `python -m tensorferry.converters.maps.mapgen setup` creates)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help=f"seconds per framework worker (default: {DEFAULT_TIMEOUT:g})")
    p.add_argument("--report-dir", help="where verification.json/.md/.png go (default: DIR; for a repo ./verification-OWNER--NAME)")
    p.add_argument("--no-report", action="store_true", help="write no report files")
    p.add_argument("--json", action="store_true", help="print verification.json to stdout")
    if add_hub_options:
        add_hub_options(p)
    p.set_defaults(func=lambda args: cmd_verify(args, resolve or _local))
    return p


def parse_models(items: list[str] | None) -> dict[str, str] | None:
    """``["pt=m:f", "tf=m:g"]`` → ``{"pt": "m:f", "tf": "m:g"}``; ``["transformers"]`` → ``{"*": "transformers"}``."""
    if not items:
        return None
    from .models import SOURCES

    out: dict[str, str] = {}
    for item in items:
        fw, eq, spec = item.partition("=")
        if not eq:
            if item not in SOURCES or item == "factory":
                raise InputError("--model", f"{item!r}: expected FW=module:factory, or one of: {', '.join(k for k in SOURCES if k != 'factory')}")
            out["*"] = item
            continue
        fw = ALIASES.get(fw.strip(), fw.strip())
        if fw not in FRAMEWORKS or ":" not in spec:
            raise InputError("--model", f"{item!r}: expected FW=module:factory with FW one of {', '.join(FRAMEWORKS)}")
        out[fw] = spec.strip()
    if "*" in out and len(out) > 1:
        raise InputError("--model", "give either one model source name or FW=module:factory entries, not both")
    return out


def cmd_verify(args: argparse.Namespace, resolve: Resolver = _local) -> int:
    """Run ``verify`` with parsed arguments; the exit code says whether everything passed."""
    from .run import verify_dir

    frameworks = parse_frameworks(args.frameworks, "--frameworks") if args.frameworks else None
    models = parse_models(args.model)
    if args.atol is not None and not args.atol >= 0:
        raise InputError("--atol", "must be a number ≥ 0")
    folder, repo = resolve(args.target, frameworks, args)
    if args.no_report:
        report_dir: str | Path | bool = False
    elif args.report_dir:
        report_dir = args.report_dir
    else:
        report_dir = Path(f"verification-{args.target.replace('/', '--')}") if repo else folder
    result = verify_dir(folder, reference=args.reference, frameworks=frameworks, atol=args.atol, models=models,
                        inputs=args.inputs, seed=args.seed, dtype=args.dtype, functional=not args.weights_only,
                        transformers_python=args.transformers_python, report_dir=report_dir, timeout=args.timeout, repo=repo)
    if args.json:
        print(json.dumps(result.to_json(), indent=2, ensure_ascii=False))
    else:
        print(result.summary())
    if args.require_outputs and result.passed and not result.complete:
        print(f"--require-outputs: outputs not compared for {', '.join(result.weights_only())}", file=sys.stderr)
        return 3
    return 0 if result.passed else 3
