"""``python -m tensorferry.converters.maps.mapgen {setup,generate}``: see the package docstring.

``generate`` re-executes itself with the transformers environment's python (creating it first), runs
one worker process per model_type (fresh TF/JAX state each, a crash costs one family), and rewrites
``converters/maps/data/transformers/*.json`` plus the coverage tables of ``docs/transformers.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ... import envs as env
from ..transformers import MAPS_DIR


def _inside_env() -> bool:
    try:
        import transformers
    except ImportError:
        return False
    return transformers.__version__ == env.TRANSFORMERS_VERSION


def main(argv: list[str] | None = None) -> int:
    """Entry point, e.g. ``main(["generate", "--only", "bert,gpt2"])``."""
    ap = argparse.ArgumentParser(prog="python -m tensorferry.converters.maps.mapgen")
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("setup", help="create the transformers 4.57.6 environment (idempotent)")
    s.add_argument("--force", action="store_true", help="rebuild even if it is ready")
    g = sub.add_parser("generate", help="rebuild converters/maps/data/transformers/*.json")
    g.add_argument("--only", default="", help="comma-separated model_types (default: all)")
    g.add_argument("--jobs", type=int, default=2)
    g.add_argument("--out", type=Path, default=MAPS_DIR)
    w = sub.add_parser("_record", help=argparse.SUPPRESS)
    w.add_argument("model_type")
    w.add_argument("result", type=Path)
    args = ap.parse_args(argv)

    if args.cmd == "setup":
        print(env.setup(force=args.force))
        return 0
    if not _inside_env():
        # Re-exec in the second environment: transformers 4.x cannot live in the project's.
        return env.run_in_env(["-m", "tensorferry.converters.maps.mapgen", *(argv if argv is not None else sys.argv[1:])]).returncode
    if args.cmd == "_record":
        return _record(args.model_type, args.result)
    return _generate(args.only, args.jobs, args.out)


def _record(model_type: str, result: Path) -> int:
    from .build import families
    from .record import record_family

    fam = families()[model_type]
    archs, failures, variants = record_family(model_type, fam.classes)
    result.write_text(json.dumps({"architectures": archs, "failures": failures, "variants": variants}))
    return 0


def _generate(only: str, jobs: int, out: Path) -> int:
    import transformers
    from transformers.models.auto.modeling_auto import MODEL_MAPPING_NAMES

    from .build import NOT_BUILDABLE, families
    from .write import write_docs, write_family

    fams = families()
    wanted = [m for m in fams if not only or m in only.split(",")]
    out.mkdir(parents=True, exist_ok=True)
    coverage_path = out / "_coverage.json"
    coverage = json.loads(coverage_path.read_text()) if coverage_path.exists() and only else {}
    tmp = Path(tempfile.mkdtemp(prefix="mapgen-"))

    def run(model_type: str) -> tuple[str, dict | None, str]:
        if model_type in NOT_BUILDABLE:
            return model_type, None, NOT_BUILDABLE[model_type]
        res = tmp / f"{model_type}.json"
        t = time.time()
        p = subprocess.run([sys.executable, "-m", "tensorferry.converters.maps.mapgen", "_record", model_type, str(res)],
                           capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
        (tmp / f"{model_type}.log").write_text(p.stdout + p.stderr)
        print(f"{model_type}: exit {p.returncode} in {time.time() - t:.0f}s", flush=True)
        if p.returncode or not res.exists():
            return model_type, None, f"worker crashed (exit {p.returncode}): {(p.stderr.strip().splitlines() or [''])[-1][:200]}"
        return model_type, json.loads(res.read_text()), ""

    with ThreadPoolExecutor(jobs) as pool:
        for model_type, result, reason in pool.map(run, wanted):
            base = MODEL_MAPPING_NAMES.get(model_type)
            base = base if isinstance(base, str) else None
            coverage[model_type] = write_family(out, model_type, fams[model_type].classes, result, reason,
                                                base, transformers.__version__)
    coverage_path.write_text(json.dumps(dict(sorted(coverage.items())), indent=1) + "\n")
    write_docs(coverage)
    print(f"logs in {tmp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
