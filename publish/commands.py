"""``tensorferry publish`` and ``tensorferry pull``: parsers and the functions that run them.

    tensorferry publish ckpt/ alice/tiny-bert                  # PT folder → PT + TF + Flax, one commit, huggingface.co
    tensorferry publish ckpt/ alice/tiny-bert --hub local      # the same to the local Hub (started and stopped for it)
    tensorferry publish bert-base-uncased me/bert-3fw --create-pr --dry-run
    tensorferry pull alice/tiny-bert --framework tf --out tf/

>>> import argparse
>>> p = argparse.ArgumentParser(); _ = add_publish(p.add_subparsers())
>>> a = p.parse_args(["publish", "ckpt", "a/b", "--create-pr", "--allow-patterns", "*.h5", "config.json"])
>>> a.create_pr, a.allow_patterns, a.revision
(True, ['*.h5', 'config.json'], None)
"""
from __future__ import annotations

import argparse
import json
import sys

from tensorferry.converters.constants import LOCAL_HUB_PORT, MAX_SHARD_SIZE
from tensorferry.converters.verify.cli import parse_models

from .hub.local import default_data_dir


def add_publish(subparsers) -> argparse.ArgumentParser:
    """Register ``publish``."""
    p = subparsers.add_parser("publish", help="convert, verify and push every framework variant to one repo in one commit",
                              description=__doc__.split(">>>")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", metavar="SRC", help="checkpoint folder or weights file, or a Hub repo id")
    p.add_argument("repo_id", metavar="REPO_ID", help="the repo to publish to (owner/name)")
    p.add_argument("--to", help="frameworks to publish, comma separated (default: pt,tf,flax)")
    where = p.add_argument_group("where to").add_mutually_exclusive_group()
    where.add_argument("--endpoint", help="Hub URL (default: HF_ENDPOINT, else https://huggingface.co)")
    where.add_argument("--hub", choices=["local"], help="publish to the local Hub (started on a free port over --hub-data-dir)")
    p.add_argument("--hub-data-dir", default=None, help=f"the local Hub's data (default: {default_data_dir()})")
    p.add_argument("--token", help="Hub token (default: HF_TOKEN, else the stored login); never printed")
    hub = p.add_argument_group("the commit (huggingface_hub's names)")
    hub.add_argument("--revision", help="branch to commit to (default: main; created from main if missing)")
    hub.add_argument("--create-pr", action="store_true", help="put the commit on a new pull request; main is untouched")
    hub.add_argument("--private", action="store_true", default=None, help="create the repo private (if it does not exist)")
    hub.add_argument("--commit-message", help="commit title (default: 'Add pt, tf, flax weights (tensorferry)')")
    hub.add_argument("--commit-description", help="commit / PR description (default: the verification table)")
    hub.add_argument("--allow-patterns", nargs="+", help="publish only files matching these patterns")
    hub.add_argument("--ignore-patterns", nargs="+", help="leave out files matching these patterns")
    hub.add_argument("--parent-commit", help="the head you expect (default: the head read when planning)")
    hub.add_argument("--dry-run", action="store_true", help="print the plan (files, sizes, add/replace) and send nothing")
    v = p.add_argument_group("verification")
    v.add_argument("--verify", default="auto", choices=["auto", "full", "weights"],
                   help="auto: weights always, outputs where the frameworks are installed (default); full: outputs "
                        "everywhere or fail; weights: weights only")
    v.add_argument("--require-outputs", action="store_true", help="refuse to push unless outputs were compared everywhere")
    v.add_argument("--model", action="append", metavar="FW=MODULE:FACTORY", help="model factories for output checks (as verify)")
    p.add_argument("--variant", action="append", default=[], metavar="NAME=MODULE:FACTORY",
                   help="also publish a variant for your own model: keras3 (a Keras 3 model → keras3/model.weights.h5) "
                        "or nnx (an NNX module → an Orbax checkpoint in nnx/); verified in its framework before the push")
    v.add_argument("--transformers-python", help="a Python with transformers 4.57.6 for transformers classes")
    s = p.add_argument_group("a Hub repo as SRC")
    s.add_argument("--source-revision", help="revision of SRC (default: main)")
    s.add_argument("--source-endpoint", help="Hub of SRC (default: the target's)")
    s.add_argument("--cache-dir", help="huggingface_hub cache folder (default: HF_HOME's)")
    p.add_argument("--max-shard-size", default=MAX_SHARD_SIZE, help=f"shard variants past this size (default: {MAX_SHARD_SIZE})")
    p.add_argument("--work-dir", help="where the converted variants are staged before the upload "
                                      "(default: the system's temporary folder, TMPDIR); needs room for them")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(func=cmd_publish)
    return p


def cmd_publish(args: argparse.Namespace) -> int:
    """Run ``publish`` with parsed arguments."""
    from .hub.local import serving
    from .hub_io import redacted_command
    from .publisher import publish

    options = dict(to=args.to, token=args.token, revision=args.revision, create_pr=args.create_pr, private=args.private,
                   commit_message=args.commit_message, commit_description=args.commit_description,
                   allow_patterns=args.allow_patterns, ignore_patterns=args.ignore_patterns, dry_run=args.dry_run,
                   parent_commit=args.parent_commit, verify=args.verify, require_outputs=args.require_outputs,
                   models=parse_models(args.model), transformers_python=args.transformers_python,
                   source_revision=args.source_revision, source_endpoint=args.source_endpoint, cache_dir=args.cache_dir,
                   max_shard_size=args.max_shard_size, work_dir=args.work_dir, command=redacted_command(["tensorferry", *getattr(args, "argv", sys.argv[1:])], args.token),
                   progress=_bar(args), variants=args.variant)
    if args.hub == "local":
        data_dir = args.hub_data_dir or default_data_dir()
        with serving(args.repo_id.split("/")[0], data_dir) as (url, token):
            result = publish(args.src, args.repo_id, **{**options, "endpoint": url, "token": token})
        page = f"http://127.0.0.1:{LOCAL_HUB_PORT}/{args.repo_id}"
        note = f"browse it: tensorferry hub serve --data-dir {data_dir}   then open {page}"
    else:
        result = publish(args.src, args.repo_id, endpoint=args.endpoint, **options)
        note = f"page: {result.page}"
    if args.json:
        print(json.dumps({**result.to_json(), **({"serve": note} if args.hub else {})}, indent=2))
    else:
        print(result.summary())
        print(note)
    return 0


def _bar(args: argparse.Namespace):
    if args.json:
        return None
    from tqdm import tqdm

    bar = tqdm(unit="B", unit_scale=True, desc="converting", file=sys.stderr, disable=None, leave=False)
    return bar.update


def add_pull(subparsers) -> argparse.ArgumentParser:
    """Register ``pull``."""
    p = subparsers.add_parser("pull", help="download one framework's variant of a repo (converted if the repo lacks it)")
    p.add_argument("repo_id", metavar="REPO_OR_DIR")
    p.add_argument("--framework", required=True, help="pt, tf or flax")
    p.add_argument("--out", required=True, help="folder to write the variant (and config.json) to")
    p.add_argument("--revision", help="branch, tag or commit")
    p.add_argument("--endpoint", help="Hub URL (default: HF_ENDPOINT, else https://huggingface.co)")
    p.add_argument("--token", help="Hub token (default: HF_TOKEN, else the stored login); never printed")
    p.add_argument("--cache-dir", help="huggingface_hub cache folder")
    p.add_argument("--local-files-only", action="store_true", help="use the cache only, no network")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(func=cmd_pull)
    return p


def cmd_pull(args: argparse.Namespace) -> int:
    """Run ``pull`` with parsed arguments."""
    from .loading import pull

    files = pull(args.repo_id, args.framework, args.out, revision=args.revision, endpoint=args.endpoint, token=args.token,
                 cache_dir=args.cache_dir, local_files_only=args.local_files_only)
    if args.json:
        print(json.dumps({"out": args.out, "files": files}))
    else:
        print(f"{args.out}: {', '.join(files)}")
    return 0
