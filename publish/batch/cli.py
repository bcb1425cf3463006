"""``tensorferry batch ORG``: every repo of an organisation gets its missing framework variants, one PR each.

    tensorferry batch acme --dry-run                       # the plan: what each repo needs, and why
    tensorferry batch acme --workers 2                     # convert, verify, one PR per repo (journal: resumable)
    tensorferry batch acme --hub local --push              # to the local Hub, one commit per repo instead of a PR
    tensorferry batch acme --dask local --workers 4        # on a distributed.LocalCluster
    tensorferry batch acme --scheduler tcp://10.0.0.5:8786 # on a running Dask cluster

Exit codes: 0 when no repo failed; else the highest of the failures' (2 bad input, 3 verification, 4 Hub,
also when the Hub failed while planning a repo).

>>> import argparse
>>> p = argparse.ArgumentParser(); _ = add_subparser(p.add_subparsers())
>>> a = p.parse_args(["batch", "acme", "--include", "bert-*", "--max-size", "2GB", "--push"])
>>> a.org, a.include, a.max_size, a.create_pr
('acme', ['bert-*'], '2GB', False)
"""
from __future__ import annotations

import argparse
import json
import sys


def add_subparser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``batch`` (argparse only: nothing heavy is imported until the command runs)."""
    p = subparsers.add_parser("batch", help="convert every repo of an organisation: plan, verify, one PR per repo, resumable",
                              description=__doc__.split(">>>")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("org", metavar="ORG", help="the organisation (or user) whose model repos to convert")
    p.add_argument("--to", default="pt,tf,flax", help="frameworks every repo should hold (default: pt,tf,flax)")
    p.add_argument("--token", help="Hub token (default: HF_TOKEN, else the stored login); never printed")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--endpoint", help="Hub URL (default: HF_ENDPOINT, else https://huggingface.co)")
    where.add_argument("--hub", choices=["local"], help="the local Hub over --hub-data-dir, started for the run")
    p.add_argument("--hub-data-dir", help="the local Hub's data (default: the `hub serve` one)")
    p.add_argument("--include", action="append", default=[], metavar="GLOB", help="only repos matching (id or name; repeatable)")
    p.add_argument("--exclude", action="append", default=[], metavar="GLOB", help="leave out repos matching (repeatable)")
    p.add_argument("--max-size", metavar="SIZE", help="skip repos whose source weights are larger (e.g. 10GB)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--create-pr", dest="create_pr", action="store_true", default=True,
                      help="one pull request per repo (default)")
    mode.add_argument("--push", dest="create_pr", action="store_false", help="one commit per repo on main instead")
    p.add_argument("--dry-run", action="store_true", help="print the plan and stop (reads only)")
    run = p.add_argument_group("where the repos run")
    run.add_argument("--workers", type=int, default=2, help="worker processes (or Dask local workers); default 2")
    run.add_argument("--max-memory", metavar="SIZE", help="memory budget of the repos in flight (default: 80%% of available RAM)")
    dask = run.add_mutually_exclusive_group()
    dask.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="run on this Dask scheduler's workers")
    dask.add_argument("--dask", choices=["local"], help="start a distributed.LocalCluster of --workers workers")
    p.add_argument("--journal", help="the SQLite journal (default: ./tensorferry-batch-ORG.sqlite); a re-run resumes from it")
    p.add_argument("--report", help="folder for report.md/.json/.csv (default: ./tensorferry-batch-ORG-report)")
    p.add_argument("--verify", default="auto", choices=["auto", "full", "weights"], help="as publish (default: auto)")
    p.add_argument("--cache-dir", help="huggingface_hub cache for the source downloads (default: HF_HOME's)")
    p.add_argument("--max-shard-size", default="5GB", help="shard variants past this size (default: 5GB)")
    p.add_argument("--retries", type=int, default=2, help="whole-repo retries after a Hub failure (default: 2)")
    p.add_argument("--json", action="store_true", help="print the plan (--dry-run) or the report as JSON on stdout")
    p.set_defaults(func=cmd_batch)
    return p


def cmd_batch(args: argparse.Namespace) -> int:
    """Run ``batch`` with parsed arguments."""
    from tensorferry.converters.constants import parse_frameworks
    from tensorferry.converters.pipeline import parse_size

    from .run import BatchOptions, run_batch

    from tensorferry.converters.errors import InputError

    if args.workers < 1:
        raise InputError("--workers", "must be at least 1")
    if args.retries < 0:  # negative would mean no attempt at all, and every repo "failed" with no error
        raise InputError("--retries", f"must be 0 or more, got {args.retries}")
    opts = BatchOptions(args.org, to=parse_frameworks(args.to), endpoint=args.endpoint, token=args.token,
                        include=args.include, exclude=args.exclude,
                        max_size=parse_size(args.max_size) if args.max_size else None, create_pr=args.create_pr,
                        dry_run=args.dry_run, workers=args.workers,
                        max_memory=parse_size(args.max_memory) if args.max_memory else None, scheduler=args.scheduler,
                        dask_local=args.dask == "local", journal=args.journal, report=args.report, verify=args.verify,
                        cache_dir=args.cache_dir, max_shard_size=args.max_shard_size, retries=args.retries)
    if args.hub == "local":
        from ..hub.local import serving

        with serving(args.org, args.hub_data_dir) as (url, token):
            opts.endpoint, opts.token = url, token
            result = run_batch(opts)
    else:
        result = run_batch(opts)
    if args.dry_run:
        from .plan import plan_table

        print(json.dumps([p.to_json() for p in result.plans], indent=2) if args.json else plan_table(result.plans))
        return 4 if any(p.action == "fail" for p in result.plans) else 0  # the Hub failed on a repo
    if args.json:
        print(json.dumps({"summary": result.line, "report": {k: str(v) for k, v in result.files.items()},
                          "repos": result.rows}, indent=2))
    else:
        print(result.line)
        print(f"report: {result.files['md']} (.json, .csv)", file=sys.stderr)
    return result.exit_code
