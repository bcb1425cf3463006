"""``tensorferry convert``: argument parsing and the human/JSON output of a conversion.

>>> import argparse
>>> p = argparse.ArgumentParser(); add_subparser(p.add_subparsers())
>>> p.parse_args(["convert", "ckpt", "--to", "tf,jax", "--out", "o"]).to
'tf,jax'
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from .constants import CANONICAL, EXTRA, FRAMEWORKS, MAX_SHARD_SIZE, parse_frameworks
from .errors import InputError
from .kinds import check_table

if TYPE_CHECKING:
    from .plan import Plan


def add_subparser(subparsers) -> None:
    """Register ``convert`` on the main CLI's subparsers."""
    p = subparsers.add_parser("convert", help="convert weights between PyTorch, TensorFlow and Flax layouts",
                              description="SRC is a folder with config.json and one framework's weights under standard "
                                          "names, or one weights file of any name (format read from its content).")
    p.add_argument("src", help="checkpoint folder or weights file")
    p.add_argument("--to", default=",".join(FRAMEWORKS), help="targets, comma separated: pt,tf,flax (default: all)")
    p.add_argument("--out", help="output folder (required unless --explain)")
    p.add_argument("--from", dest="source_framework", default="auto", choices=["auto", *FRAMEWORKS],
                   help="source framework when SRC holds several (default: auto)")
    p.add_argument("--explain", action="store_true", help="print the route and every tensor's mapping, write nothing")
    p.add_argument("--strict", action="store_true", help="refuse to decide any tensor by heuristic")
    p.add_argument("--dtype", help="cast floating tensors (float32, float16, bfloat16); integers keep theirs")
    p.add_argument("--max-shard-size", default=MAX_SHARD_SIZE, help=f"shard outputs past this size (default: {MAX_SHARD_SIZE})")
    p.add_argument("--kind", action="append", default=[], metavar="REGEX=KIND",
                   help="declare a module's kind, e.g. 'features\\.3=depthwise:2' (repeatable)")
    p.add_argument("--layout-map", help="a layout map JSON to use instead of the one for config.json's model_type")
    p.add_argument("--key", metavar="PATH", help="where the state dict is in a training checkpoint, e.g. state_dict or model.ema")
    p.add_argument("--drop", action="append", default=[], metavar="REGEX",
                   help="leave out source tensors whose name matches (re.search; repeatable)")
    p.add_argument("--model", action="append", default=[], metavar="FW=MODULE:FACTORY",
                   help="write FW's file for your own model (a no-argument factory: built tf_keras model, flax variables, "
                        "or nn.Module), pairing its layers with the source by structure (repeatable)")
    p.add_argument("--no-extras", dest="extras", action="store_false",
                   help="leave out the side data that makes LSTM/GRU/BatchNorm round trips exact")
    p.add_argument("--verify", action="store_true", help="verify the written variants afterwards")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(func=cmd_convert)


def _kinds(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        regex, sep, kind = pair.rpartition("=")
        if not sep or not regex:
            raise InputError("--kind", f"expected REGEX=KIND, got {pair!r}")
        out[regex] = kind
    return check_table(out, "--kind")


def cmd_convert(args: argparse.Namespace) -> int:
    """Run ``convert`` with parsed arguments; returns the exit code."""
    # Imported here, not at the top: `tensorferry --help` and every other command start without them.
    from .checkpoint import open_source
    from .dtypes import cast_dtype
    from .pipeline import convert, plan_for, select

    args.to = parse_frameworks(args.to)
    source_fw = None if args.source_framework == "auto" else args.source_framework
    kinds = _kinds(args.kind)
    if args.dtype:
        cast_dtype(args.dtype)  # refused before anything is read
    if args.explain:
        source = open_source(args.src, source_fw, key=args.key)
        dropped, warnings = select(source, args.drop)
        plan = plan_for(source, args.to, strict=args.strict, kinds=kinds, layout_map=args.layout_map, models=args.model)
        rows = explain(plan)
        rows.update(checkpoint=source.found.to_json() if source.found else None, dropped=dropped, warnings=warnings)
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            _notes(source.found, dropped, warnings)
            print(render(rows))
        return 0
    if not args.out:
        raise InputError("--out", "an output folder is needed (or use --explain)")
    models = _verifiable_models(args) if args.verify and args.model else args.model
    source = open_source(args.src, source_fw, key=args.key)
    bar = _progress(args, source)
    try:
        result = convert(source, args.out, args.to, source_framework=source_fw, strict=args.strict,
                         dtype=args.dtype, max_shard_size=args.max_shard_size, kinds=kinds, layout_map=args.layout_map,
                         extras=args.extras, progress=bar.update if bar else None, drop=args.drop, models=models)
    finally:
        if bar:
            bar.close()
    report = result.to_json()
    code = 0
    guided_checks: dict = {}
    if args.verify:
        from .verify.guided import verify_guided

        guided_checks = verify_guided(args.out, source, result.plan)  # Keras 3 / NNX: loaded by their own framework
        plain = [fw for fw in args.to if fw not in guided_checks]
        report["verification_models"] = {fw: {"files": c.files, "passed": c.passed, "summary": c.brief(),
                                              "failures": [t.name for t in c.failures]} for fw, c in guided_checks.items()}
        passed = all(c.passed for c in guided_checks.values())
        if plain:
            from .verify.run import verify_dir

            # against the source as this conversion read it (--key, --drop) and planned it (--kind, --layout-map)
            verification = verify_dir(args.out, reference=source, frameworks=plain, kinds=kinds, layout_map=args.layout_map)
            report["verification"] = verification.to_json()
            passed = passed and verification.passed
        code = 0 if passed else 3
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for fw, o in result.outputs.items():
            print(f"{fw}: {', '.join(o.files)} ({o.tensors} tensors, {o.bytes / 1e6:.1f} MB)")
        for module, why in result.heuristics.items():
            print(f"heuristic: {module} taken as {why}", file=sys.stderr)
        _notes(source.found, result.dropped, result.warnings)
        if result.keras:
            print(f"keras archive: {result.keras['class_name']} (module {result.keras['module']}), saved by Keras "
                  f"{result.keras['keras_version']}", file=sys.stderr)
        if result.unrecovered:
            print(f"not recoverable from {source.framework} ({len(result.unrecovered)}, left out of model.safetensors): "
                  + ", ".join(result.unrecovered), file=sys.stderr)
        print(f"wrote {args.out} in {result.seconds:.2f}s")
        if args.verify:
            for fw, check in guided_checks.items():
                loader = "Keras 3 load_weights" if fw == "tf" else "Orbax restore into nnx.state(model)"
                print(f"verify {fw} ({loader}): {check.brief()}")
            if "verification" in report:
                print(verification.summary())
    return code


def _verifiable_models(args: argparse.Namespace) -> dict[str, object]:
    """The --model models, built once, when --verify is asked: only Keras 3 and NNX targets are
    verified by their own framework here (other --model files carry the model's own names)."""
    from .guided import keras3, load_model, nnx
    from .pipeline import parse_models

    models = {fw: load_model(fw, spec) for fw, spec in parse_models(args.model).items()}
    for fw, model in models.items():
        if fw in args.to and not (fw == "tf" and keras3.is_keras3(model) or fw == "flax" and nnx.is_nnx(model)):
            raise InputError("--verify", f"checks files written for --model {fw} only for Keras 3 models and NNX modules: "
                                         "load the others with your model's own loader")
    return models


def _notes(found, dropped: list[str], warnings: list[str]) -> None:
    """What was taken from a training checkpoint and what was left out, on stderr."""
    for line in found.lines() if found else []:
        print(f"checkpoint: {line}", file=sys.stderr)
    if dropped:
        print(f"dropped ({len(dropped)}): {', '.join(dropped)}", file=sys.stderr)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)


def _progress(args: argparse.Namespace, source):
    if args.json:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    total = source.nbytes * len(args.to)
    return tqdm(total=total, unit="B", unit_scale=True, desc="converting", file=sys.stderr, disable=None, leave=False)


def explain(plan: Plan) -> dict:
    """The route and, per target, every tensor's source name → target name and transform."""
    canonical = {name: m for m in plan.canonical for name, _, _ in m.targets}
    out = {"route": [plan.source.framework, CANONICAL, ", ".join(plan.targets)], "source": [str(f) for f in plan.source.files],
           "kinds": {m: {"kind": d.kind, "decided_by": d.how, "why": d.why, **dict(d.params)} for m, d in plan.decisions.items()},
           "targets": {}, "pairings": plan.pairings, "unrecovered": plan.unrecovered}
    nnx_paths = {name: "/".join(map(str, path)) for name, path in plan.nnx.paths.items()} if plan.nnx is not None else {}
    out["writes"] = {fw: _writes(plan, fw) for fw in plan.targets}
    for fw, moves in plan.targets.items():
        rows = []
        keras2 = fw == "tf" and plan.keras3 is None  # Keras 2 weight names end in :0; Keras 3 datasets are paths
        for move, _ in moves:
            srcs = list(dict.fromkeys(s for c in move.sources for s in (canonical[c].sources if c in canonical else (c,))))
            first = canonical.get(move.sources[0]) if move.sources else None
            steps = [x for x in ((first.op if first else ""), move.op) if x and x != "identity"]
            # An optional tensor's config setting, or a tensor rebuilt from the config (no source tensor).
            notes = [w for w in (move.why, first.why if first else "") if "present when" in w or w.startswith("rebuilt")]
            if first is not None and not first.sources:
                srcs = ["config.json"]
            for name, shape, dt in move.targets:
                side = name.startswith(EXTRA + "/")
                if fw == "flax" and plan.nnx is not None:
                    if side:
                        continue  # an NNX state has no room for side data: not written
                    name = nnx_paths.get(name, name)
                row = {"from": srcs, "to": name + (":0" if keras2 and not side else "") + (" (side data)" if side else ""), "shape": list(shape), "dtype": dt.name,
                       "transform": " ; ".join(steps) or "identity", "kind": move.kind, "decided_by": move.how}
                if notes:
                    row["note"] = notes[0].split("; ")[-1]
                rows.append(row)
        out["targets"][fw] = rows
    return out


def _writes(plan: Plan, fw: str) -> str:
    """What a target's files are: a model's own format when one was given, else the standard files."""
    from .constants import FILES, KERAS3_WEIGHTS, NNX_DIR

    if fw == "tf" and plan.keras3 is not None:
        return f"Keras 3 {KERAS3_WEIGHTS}"
    if fw == "flax" and plan.nnx is not None:
        return f"Orbax checkpoint of the NNX state in {NNX_DIR}/"
    return FILES[fw].single


def render(rows: dict) -> str:
    lines = ["route: " + " → ".join(rows["route"])]
    heur = [m for m, d in rows["kinds"].items() if d["decided_by"] == "heuristic"]
    if heur:
        lines.append(f"decided by heuristic ({len(heur)}): " + ", ".join(heur))
    for fw, items in rows["targets"].items():
        lines.append(f"\n{fw} ({rows['writes'][fw]}):" if rows.get("writes", {}).get(fw) else f"\n{fw}:")
        pairs = rows.get("pairings", {}).get(fw, [])
        if pairs:
            lines.append(f"  pairings with the given model ({len(pairs)}):")
            lines += [f"    {p['source']} → {p['target']} [{p['class']}, {p['kind']}]: {p['evidence']}" for p in pairs]
        width = max((len(", ".join(r["from"])) for r in items), default=0)
        for r in items:
            note = f"  ({r['note']})" if r.get("note") else ""
            lines.append(f"  {', '.join(r['from']):<{width}} → {r['to']}  [{r['transform']}] {r['kind']}/{r['decided_by']}{note}")
    if rows.get("unrecovered"):
        lines.append(f"\nnot recoverable from this file ({len(rows['unrecovered'])}): " + ", ".join(rows["unrecovered"]))
    return "\n".join(lines)
