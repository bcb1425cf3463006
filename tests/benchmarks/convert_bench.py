"""Benchmark: convert a ~1 GiB fp32 checkpoint PT → TF + Flax against `cp` of the same bytes.

Run: ``python tests/benchmarks/convert_bench.py [--gib 1.0] [--keep DIR]``.  Prints, in one run,
the conversion time against copying the source twice with ``cp`` (the same bytes written), and
the peak anonymous memory (RssAnon of the process tree, sampled) against the largest tensor.
Targets on a 2-core machine: ratio ≤ 2.0; peak ≤ 3 × largest tensor + 300 MB.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _measure import run  # noqa: E402

from tensorferry.converters.formats import safetensors_file  # noqa: E402


def bert_like_specs(gib: float) -> list[tuple[str, tuple[int, ...], np.dtype]]:
    """A BERT-large-shaped encoder (hidden 1024, MLP 4096) with as many layers as fit ``gib``."""
    h, ff, vocab = 1024, 4096, 32000
    f32 = np.dtype("float32")
    specs = [("embeddings.word_embeddings.weight", (vocab, h), f32), ("embeddings.position_embeddings.weight", (512, h), f32),
             ("embeddings.token_type_embeddings.weight", (2, h), f32), ("embeddings.LayerNorm.weight", (h,), f32),
             ("embeddings.LayerNorm.bias", (h,), f32)]
    per_layer = (4 * h * h + 2 * h * ff) * 4
    layers = max(1, int((gib * 2**30 - vocab * h * 4) // per_layer))
    for i in range(layers):
        p = f"encoder.layer.{i}."
        for name in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
            specs += [(p + name + ".weight", (h, h), f32), (p + name + ".bias", (h,), f32)]
        specs += [(p + "attention.output.LayerNorm.weight", (h,), f32), (p + "attention.output.LayerNorm.bias", (h,), f32),
                  (p + "intermediate.dense.weight", (ff, h), f32), (p + "intermediate.dense.bias", (ff,), f32),
                  (p + "output.dense.weight", (h, ff), f32), (p + "output.dense.bias", (h,), f32),
                  (p + "output.LayerNorm.weight", (h,), f32), (p + "output.LayerNorm.bias", (h,), f32)]
    return specs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gib", type=float, default=1.0)
    ap.add_argument("--keep", help="work in this folder and keep it")
    args = ap.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="tf-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    src = work / "src"
    src.mkdir(exist_ok=True)
    specs = bert_like_specs(args.gib)
    rng = np.random.default_rng(0)
    safetensors_file.write(src / "model.safetensors", specs, lambda n: rng.standard_normal(dict((s[0], s[1]) for s in specs)[n], dtype=np.float32) * 0.02)
    (src / "config.json").write_text('{"model_type": "bench-bert", "architectures": ["BenchBert"]}')
    size = (src / "model.safetensors").stat().st_size
    largest = max(int(np.prod(s)) * 4 for _, s, _ in specs)

    run(["sync"])
    # Both sides end with sync, so both pay for the bytes reaching the disk.
    cp_seconds, _ = run(["sh", "-c", f"cp {src / 'model.safetensors'} {work / 'cp0'} && cp {src / 'model.safetensors'} {work / 'cp1'} && sync"])
    out = work / "out"
    convert = f"{sys.executable} -m tensorferry.publish.cli convert {src} --to tf,flax --out {out} --json"
    seconds, peak = run(["sh", "-c", f"{convert} && sync"], env={"TQDM_DISABLE": "1"})
    written = sum(p.stat().st_size for p in out.iterdir() if p.suffix in (".h5", ".msgpack"))
    print(f"checkpoint: {size / 2**30:.2f} GiB fp32, {len(specs)} tensors, largest {largest / 2**20:.0f} MiB")
    print(f"cp ×2 (same bytes twice, + sync): {cp_seconds:.2f} s")
    print(f"tensorferry convert --to tf,flax:   {seconds:.2f} s  (wrote {written / 2**30:.2f} GiB)")
    print(f"time ratio vs cp ×2: {seconds / cp_seconds:.2f}  (target ≤ 2.0)")
    print(f"peak RssAnon: {peak / 2**20:.0f} MiB = {peak / largest:.2f} × largest tensor; "
          f"budget 3 × largest + 300 MB = {(3 * largest + 300e6) / 2**20:.0f} MiB → {'OK' if peak <= 3 * largest + 300e6 else 'OVER'}")
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
