"""``tensorferry verify DIR_OR_REPO``: check every variant's weights and outputs; exit 0, 3 or 2.

    tensorferry verify out/                                   # the variants in out/ against out/model.safetensors
    tensorferry verify out/ --reference ckpt/ --frameworks tf,flax --atol 1e-4
    tensorferry verify out/ --model pt=mypkg.models:torch_model --model tf=mypkg.models:keras_model
    tensorferry verify user/repo --revision main --json       # downloads only config.json and weights

>>> import argparse
>>> p = argparse.ArgumentParser(); add_subparser(p.add_subparsers())
>>> a = p.parse_args(["verify", "out", "--model", "pt=m:f", "--model", "tf=m:g"])
>>> parse_models(a.model)
{'pt': 'm:f', 'tf': 'm:g'}
"""
from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path

from .errors import HubError, InputError

# Only what verification reads: config and weights (safetensors first; .bin only when a repo has no safetensors).
PATTERNS = {
    "pt": ["model.safetensors", "model-*-of-*.safetensors", "model.safetensors.index.json"],
    "tf": ["tf_model.h5", "tf_model-*-of-*.h5", "tf_model.h5.index.json"],
    "flax": ["flax_model.msgpack", "flax_model-*-of-*.msgpack", "flax_model.msgpack.index.json"],
}
PICKLE_PATTERNS = ["pytorch_model.bin", "pytorch_model-*-of-*.bin", "pytorch_model.bin.index.json"]
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")


def add_subparser(subparsers) -> None:
    p = subparsers.add_parser("verify", help="check converted variants: weights bit-exact, outputs within tolerance",
                              description=__doc__.split(">>>")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target", metavar="DIR_OR_REPO", help="a converted checkpoint folder or a Hub repo id")
    p.add_argument("--reference", help="the conversion's source (default: the PyTorch weights in DIR)")
    p.add_argument("--frameworks", help="comma-separated subset of pt,tf,flax (default: every variant present)")
    p.add_argument("--atol", type=float, help="max |Δ| allowed per output (default by dtype: fp32 5e-5; see docs/verify.md)")
    p.add_argument("--model", action="append", metavar="FW=MODULE:FACTORY",
                   help="model class factory per framework (repeat), or 'transformers' to force transformers classes")
    p.add_argument("--inputs", help=".npz of model inputs in PyTorch layout (default: seeded inputs chosen from the model)")
    p.add_argument("--seed", type=int, default=0, help="seed of the default inputs")
    p.add_argument("--dtype", help="the --dtype the conversion used (default: accept one consistent float cast)")
    p.add_argument("--weights-only", action="store_true", help="skip the functional level")
    p.add_argument("--transformers-python", help="python of an environment with transformers 4.57.6 "
                   "(default: the one `python -m tensorferry.converters.mapgen setup` creates)")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds per framework worker")
    p.add_argument("--report-dir", help="where verification.json/.md/.png go (default: DIR; for a repo ./verification-OWNER--NAME)")
    p.add_argument("--no-report", action="store_true", help="write no report files")
    p.add_argument("--json", action="store_true", help="print verification.json to stdout")
    hub = p.add_argument_group("Hub repo ids")
    hub.add_argument("--revision", help="branch, tag or commit")
    hub.add_argument("--token", help="Hub token (default: HF_TOKEN or the stored login); never printed")
    hub.add_argument("--cache-dir", help="huggingface_hub cache folder")
    hub.add_argument("--local-files-only", action="store_true", help="use the cache only, no network")
    p.set_defaults(func=cmd_verify)


def parse_models(items: list[str] | None) -> dict[str, str] | None:
    """``["pt=m:f", "tf=m:g"]`` → ``{"pt": "m:f", "tf": "m:g"}``; ``["transformers"]`` → ``{"*": "transformers"}``."""
    if not items:
        return None
    out: dict[str, str] = {}
    for item in items:
        fw, eq, spec = item.partition("=")
        if not eq:
            from .verify_models import SOURCES

            if item not in SOURCES or item == "factory":
                raise InputError("--model", f"{item!r}: expected FW=module:factory, or one of: {', '.join(k for k in SOURCES if k != 'factory')}")
            out["*"] = item
            continue
        fw = {"pytorch": "pt", "torch": "pt", "tensorflow": "tf", "jax": "flax"}.get(fw.strip(), fw.strip())
        if fw not in ("pt", "tf", "flax") or ":" not in spec:
            raise InputError("--model", f"{item!r}: expected FW=module:factory with FW one of pt, tf, flax")
        out[fw] = spec.strip()
    if "*" in out and len(out) > 1:
        raise InputError("--model", "give either one model source name or FW=module:factory entries, not both")
    return out


def resolve(target: str, frameworks: list[str] | None = None, *, revision: str | None = None, token: str | None = None,
            cache_dir: str | None = None, local_files_only: bool = False) -> tuple[Path, dict | None]:
    """A local folder as is, or a Hub repo downloaded (config and the needed weights only) → (folder, repo info).

    >>> resolve("fixtures/checkpoints/cnn")[1] is None            # doctest: +SKIP
    True
    """
    if Path(target).exists():
        return Path(target), None
    if not REPO_ID.match(target):
        raise InputError(target, "no such folder, and not a Hub repo id (owner/name)")
    try:  # the local Hub and other non-huggingface.co endpoints do not speak Xet
        from tensorferry.publish.hub.client import disable_xet_for

        disable_xet_for(os.environ.get("HF_ENDPOINT"))
    except ImportError:
        pass
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError,
                                        RevisionNotFoundError)

    wanted = ["pt", *[fw for fw in (frameworks or ["tf", "flax"]) if fw != "pt"]]
    # HF_ENDPOINT read now, not when huggingface_hub was first imported.
    endpoint = os.environ.get("HF_ENDPOINT") or None
    kwargs = dict(repo_type="model", revision=revision, token=token, cache_dir=cache_dir, local_files_only=local_files_only,
                  endpoint=endpoint)
    try:
        folder = Path(snapshot_download(target, allow_patterns=["config.json", *[p for fw in wanted for p in PATTERNS[fw]]], **kwargs))
        if not any((folder / p).exists() for p in ("model.safetensors", "model.safetensors.index.json")):
            folder = Path(snapshot_download(target, allow_patterns=["config.json", *PICKLE_PATTERNS], **kwargs))
    except (RepositoryNotFoundError, GatedRepoError) as e:
        raise InputError(target, f"repository not found or not accessible ({type(e).__name__})") from None
    except RevisionNotFoundError:
        raise InputError(target, f"no revision {revision!r}") from None
    except LocalEntryNotFoundError:
        raise InputError(target, "not in the cache (--local-files-only) or the Hub cannot be reached") from None
    except HfHubHTTPError as e:  # the message carries the URL, never the token
        raise HubError(target, f"download failed: {str(e).splitlines()[0]}") from None
    return folder, {"id": target, "revision": revision or "main", "endpoint": endpoint or "https://huggingface.co"}


def cmd_verify(args: argparse.Namespace) -> int:
    from .verify import verify_dir

    frameworks = [f.strip() for f in args.frameworks.split(",") if f.strip()] if args.frameworks else None
    models = parse_models(args.model)
    if args.atol is not None and not args.atol >= 0:
        raise InputError("--atol", "must be a number ≥ 0")
    folder, repo = resolve(args.target, frameworks, revision=args.revision, token=args.token, cache_dir=args.cache_dir,
                           local_files_only=args.local_files_only)
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
    return 0 if result.passed else 3
