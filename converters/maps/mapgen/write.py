"""Write one model_type's map file and the coverage tables of docs/transformers.md."""
from __future__ import annotations

import json
from pathlib import Path

from .build import explain

_DOCS = Path(__file__).resolve().parents[3] / "docs" / "transformers.md"
_BEGIN, _END = "<!-- coverage:begin (written by mapgen generate) -->", "<!-- coverage:end -->"


def write_family(out: Path, model_type: str, classes: list, result: dict | None, reason: str,
                 base_class: str | None, version: str) -> dict:
    """Write ``{model_type}.json`` (or delete a stale one) and return its coverage row.

    Example: ``write_family(Path("maps"), "bert", classes, result, "", "BertModel", "4.57.6")``.
    """
    path = out / f"{model_type}.json"
    tf_classes = [c[1] for c in classes if c[1]]
    flax_classes = [c[2] for c in classes if c[2]]
    row = {"tf_classes": tf_classes, "flax_classes": flax_classes, "tf_ok": [], "flax_ok": [], "failed": {}}
    if result is None:
        row["reason"] = reason
        path.unlink(missing_ok=True)
        return row
    archs = result["architectures"]
    row["options"] = [", ".join(f"{k}={v}" for k, v in v["config"].items())
                      + (" (fails to build)" if v.get("error") else "" if v.get("adds") else " (adds nothing new)")
                      for v in result.get("variants", []) if not v.get("split")]
    entries = [e for a in archs.values() for e in a["tensors"]]
    row["computed"] = sorted({e["computed"]["fn"] for e in entries if "computed" in e})
    row["lost"] = sorted({e["pt"] for e in entries if not e.get("tf") and not e.get("flax") and not e.get("tied_to")
                          and e.get("saved") is not False and "computed" not in e and not e.get("enabled_by")})
    by_pt = {c[0]: c for c in classes}
    for pt_name, why in result["failures"].items():  # the PT model itself did not build
        for name in by_pt[pt_name][1:]:
            if name:
                row["failed"][name] = why
    for pt_name, a in archs.items():  # one framework failed for an otherwise recorded class
        for framework, why in a.get("errors", {}).items():
            row["failed"][by_pt[pt_name][1 if framework == "tf" else 2]] = why
    for a in archs.values():
        if "tf" in a:
            row["tf_ok"].append(a["tf"]["class"])
        if "flax" in a:
            row["flax_ok"].append(a["flax"]["class"])
    if not archs:
        row["reason"] = "; ".join(sorted(set(result["failures"].values())))[:300] or "no class built"
        path.unlink(missing_ok=True)
        return row
    import transformers

    prefix = getattr(transformers, next(iter(archs))).base_model_prefix
    doc = {"model_type": model_type, "generated_by": f"transformers {version}", "base_model_prefix": prefix,
           "base_architecture": base_class if base_class in archs else None,
           "variants": result.get("variants", []), "architectures": archs}
    path.write_text(json.dumps(doc, indent=1) + "\n")
    return row


def write_docs(coverage: dict) -> None:
    """Replace the coverage section of docs/transformers.md (between its markers) with fresh tables."""
    lines = ["| model_type | TF classes | Flax classes | option variants recorded | rebuilt on the way back |",
             "|---|---|---|---|---|"]
    missing = []
    n_tf = n_flax = 0
    for mt, row in sorted(coverage.items()):
        if row["tf_ok"] or row["flax_ok"]:
            n_tf += bool(row["tf_ok"])
            n_flax += bool(row["flax_ok"])
            tf = f"{len(row['tf_ok'])}/{len(row['tf_classes'])}" if row["tf_classes"] else "—"
            fx = f"{len(row['flax_ok'])}/{len(row['flax_classes'])}" if row["flax_classes"] else "—"
            opts = "; ".join(f"`{o}`" for o in row.get("options", [])) or "—"
            lines.append(f"| `{mt}` | {tf} | {fx} | {opts} | {', '.join(row.get('computed', [])) or '—'} |")
        if not (row["tf_ok"] or row["flax_ok"]):
            missing.append(f"- `{mt}` (all classes): {explain(row.get('reason', 'not built'))}")
            continue
        for cls, why in sorted(row.get("failed", {}).items()):
            missing.append(f"- `{mt}` / `{cls}`: {explain(why)}")
    classes = {f: (sum(len(r[f"{f}_ok"]) for r in coverage.values()),
                   sum(len(r[f"{f}_classes"]) for r in coverage.values())) for f in ("tf", "flax")}
    lost = [f"- `{mt}`: " + ", ".join(f"`{k}`" for k in row["lost"]) for mt, row in sorted(coverage.items())
            if row.get("lost")]
    text = "\n".join([_BEGIN, "", f"Covered: **{n_tf}** model types with TF classes, **{n_flax}** with Flax classes; "
                      f"**{classes['tf'][0]}/{classes['tf'][1]}** TF and **{classes['flax'][0]}/{classes['flax'][1]}** "
                      "Flax classes (a cell reads classes mapped / classes transformers ships).", "", *lines, "",
                      "### Not covered", "", *(missing or ["- none"]), "",
                      "### PyTorch tensors no TF or Flax file holds and no formula rebuilds", "",
                      "Converting such a file to PyTorch lists them (`unrecovered` in the result, `--json` and the "
                      "verification report); the model then initialises them itself.", "",
                      *(lost or ["- none"]), "", _END])
    doc = _DOCS.read_text() if _DOCS.exists() else f"# transformers checkpoints\n\n{_BEGIN}\n{_END}\n"
    if _BEGIN not in doc:
        doc += f"\n{_BEGIN}\n{_END}\n"
    head, rest = doc.split(_BEGIN, 1)
    _DOCS.write_text(head + text + rest.split(_END, 1)[1])
