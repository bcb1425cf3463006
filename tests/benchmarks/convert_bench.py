"""Benchmark: convert a ≥ 1 GiB BERT checkpoint PT → TF + Flax, against cp and against transformers.

Run: ``python tests/benchmarks/convert_bench.py [--gib 1.1] [--rounds 3] [--keep DIR] [--no-transformers]``.
In one run it prints:

* the headline: ``tensorferry convert --to tf,flax`` against ``cp`` of the same checkpoint twice (the
  bytes the conversion writes), **neither side calling sync**, best of N alternating rounds;
* the same with both sides ending in ``sync`` (secondary: disk flushing then dominates both);
* tensorferry's peak anonymous memory (RssAnon of the process tree) against the largest tensor;
* transformers 4.57.6 ``from_pt`` + ``save_pretrained`` (TF and Flax) on the same checkpoint, through the
  second environment: the speed-up and the memory ratio.

The checkpoint is a real ``BertModel`` (hidden 1024, MLP 4096: BERT-large's shapes) with as many
layers as fit ``--gib``, built in the transformers environment, so tensorferry takes the transformers
map path exactly as for a downloaded BERT.  Targets on a 2-core machine: ratio ≤ 2.0 without sync;
peak ≤ 3 × largest tensor + 300 MB; ≥ 10× faster than transformers.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _measure import run  # noqa: E402

MAKE = """
import sys, torch
from transformers import BertConfig, BertModel
layers = int(sys.argv[2])
config = BertConfig(hidden_size=1024, intermediate_size=4096, num_attention_heads=16, num_hidden_layers=layers,
                    vocab_size=32000)
torch.manual_seed(0)
BertModel(config).save_pretrained(sys.argv[1], safe_serialization=True)
"""
TRANSFORMERS_SIDE = """
import sys
from transformers import FlaxBertModel, TFBertModel
src, out = sys.argv[1], sys.argv[2]
TFBertModel.from_pretrained(src, from_pt=True).save_pretrained(out + "/tf")
FlaxBertModel.from_pretrained(src, from_pt=True).save_pretrained(out + "/flax")
"""


def layers_for(gib: float) -> int:
    per_layer = (4 * 1024 * 1024 + 2 * 1024 * 4096) * 4
    return max(1, int((gib * 2**30 - 32000 * 1024 * 4) // per_layer))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gib", type=float, default=1.1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--keep", help="work in this folder and keep it")
    ap.add_argument("--no-transformers", action="store_true", help="skip the transformers side")
    args = ap.parse_args()
    from tensorferry.converters import envs

    tx_python = str(envs.setup(quiet=True))
    tx_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS="cpu", TF_USE_LEGACY_KERAS="1", HF_HUB_OFFLINE="1")
    work = Path(args.keep or tempfile.mkdtemp(prefix="tf-convert-bench-"))
    src = work / "src"
    if not (src / "model.safetensors").exists():
        subprocess.run([tx_python, "-c", MAKE, str(src), str(layers_for(args.gib))], check=True, env=tx_env,
                       capture_output=True)
    weights = src / "model.safetensors"
    size = weights.stat().st_size
    from tensorferry.converters import open_source

    source = open_source(src)
    largest = max(int(__import__("numpy").prod(s)) * d.itemsize for s, d in source.infos.values())
    out = work / "out"
    cli = [sys.executable, "-m", "tensorferry.publish.cli", "convert", str(src), "--to", "tf,flax", "--out", str(out), "--json"]
    env = {"TQDM_DISABLE": "1"}

    def clean() -> None:
        shutil.rmtree(out, ignore_errors=True)
        for p in work.glob("cp?"):
            p.unlink()

    results: dict[str, list[float]] = {"cp": [], "tf": [], "cp+sync": [], "tf+sync": []}
    peak = 0
    for _ in range(args.rounds):  # alternating, so both sides see the same machine
        # Each timed run starts with no dirty pages left by the one before (the sync is outside the timing).
        clean()
        run(["sync"])
        results["cp"].append(run(["sh", "-c", f"cp {weights} {work / 'cp0'} && cp {weights} {work / 'cp1'}"])[0])
        clean()
        run(["sync"])
        seconds, p = run(cli, env=env)
        results["tf"].append(seconds)
        peak = max(peak, p)
        clean()
        run(["sync"])
        results["cp+sync"].append(run(["sh", "-c", f"cp {weights} {work / 'cp0'} && cp {weights} {work / 'cp1'} && sync"])[0])
        clean()
        run(["sync"])
        results["tf+sync"].append(run(["sh", "-c", " ".join(cli) + " > /dev/null && sync"], env=env)[0])
    best = {k: min(v) for k, v in results.items()}
    print(f"checkpoint: BertModel, {size / 2**30:.2f} GiB fp32, {len(source.infos)} tensors, largest {largest / 2**20:.0f} MiB")
    print(f"cp ×2, no sync:                    {best['cp']:.2f} s   (rounds: {', '.join(f'{x:.2f}' for x in results['cp'])})")
    print(f"tensorferry convert --to tf,flax:  {best['tf']:.2f} s   (rounds: {', '.join(f'{x:.2f}' for x in results['tf'])})")
    print(f"ratio without sync (headline): {best['tf'] / best['cp']:.2f}  (target ≤ 2.0)")
    print(f"with sync on both sides: cp ×2 {best['cp+sync']:.2f} s, tensorferry {best['tf+sync']:.2f} s, "
          f"ratio {best['tf+sync'] / best['cp+sync']:.2f}")
    print(f"peak RssAnon: {peak / 2**20:.0f} MiB = {peak / largest:.2f} × largest tensor; budget 3 × largest + 300 MB = "
          f"{(3 * largest + 300e6) / 2**20:.0f} MiB → {'OK' if peak <= 3 * largest + 300e6 else 'OVER'}")
    if not args.no_transformers:
        clean()
        seconds, tx_peak = run([tx_python, "-c", TRANSFORMERS_SIDE, str(src), str(work / "tx-out")], env=tx_env)
        print(f"transformers 4.57.6 from_pt + save_pretrained (TF, Flax): {seconds:.1f} s, peak RssAnon {tx_peak / 2**20:.0f} MiB")
        print(f"tensorferry is {seconds / best['tf']:.1f}× faster (target ≥ 10×) with {tx_peak / max(peak, 1):.0f}× less memory")
        shutil.rmtree(work / "tx-out", ignore_errors=True)
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
