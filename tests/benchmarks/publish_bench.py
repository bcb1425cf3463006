"""Benchmark: publish a ~1 GiB fp32 checkpoint (PT → PT + TF + Flax) to the local Hub in one commit.

Run: ``python tests/benchmarks/publish_bench.py [--gib 1.0] [--rounds 3] [--keep DIR] [--verify weights]``.
Prints, in one run, the wall time of ``tensorferry publish`` against ``cp`` of the bytes it uploads
(no sync on the client side; the Hub once fsyncing what it stores, as it does by default, once
started with ``--no-fsync``), best of N alternating rounds (each publish to a fresh Hub, so nothing
is deduplicated), the CPU that run used (client and Hub: the floor its work sets on this machine's
cores), and the client's peak anonymous memory (RssAnon of the publish process tree; the
server is a separate process) against the largest tensor.
Targets on a 2-core machine: ≤ 3 × cp; peak ≤ 3 × largest tensor + 400 MB.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _measure import bert_like_specs, cpu_seconds, process_cpu, run  # noqa: E402

from tensorferry.converters.formats import safetensors_file  # noqa: E402
from tensorferry.publish.hub import LocalHub  # noqa: E402
from tensorferry.publish.hub.local import write_token  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gib", type=float, default=1.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--keep", help="work in this folder and keep it")
    ap.add_argument("--verify", default="weights", choices=["weights", "auto"])
    args = ap.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="tf-publish-bench-"))
    src = work / "src"
    src.mkdir(parents=True, exist_ok=True)
    specs = bert_like_specs(args.gib)
    shapes = {name: shape for name, shape, _ in specs}
    rng = np.random.default_rng(0)
    safetensors_file.write(src / "model.safetensors", specs, lambda n: rng.standard_normal(shapes[n], dtype=np.float32) * 0.02)
    (src / "config.json").write_text('{"model_type": "bench-bert", "architectures": ["BenchBert"]}')
    largest = max(int(np.prod(s)) * 4 for _, s, _ in specs)
    size = (src / "model.safetensors").stat().st_size

    # The same bytes copied with cp, no sync: the client reads every file once and the server writes it once.
    staging = work / "staging"
    subprocess.run([sys.executable, "-m", "tensorferry.publish.cli", "convert", str(src), "--to", "tf,flax", "--out",
                    str(staging), "--json"], check=True, stdout=subprocess.DEVNULL, env={**os.environ, "TQDM_DISABLE": "1"})
    copies = [src / "model.safetensors", staging / "tf_model.h5", staging / "flax_model.msgpack"]
    cp_runs: list[float] = []
    runs: dict[bool, list[tuple[float, int, dict, tuple[float, float]]]] = {True: [], False: []}
    for _ in range(args.rounds):  # alternating, so every side sees the same machine
        for p in work.glob("cp-*"):
            p.unlink()
        os.sync()  # each timed run starts with no dirty pages of the one before (outside the timing)
        cp_runs.append(run(["sh", "-c", " && ".join(f"cp {p} {work / ('cp-' + p.name)}" for p in copies)])[0])
        for durable in (True, False):  # the Hub fsyncing what it stores, then a throwaway one (`--no-fsync`)
            hub_dir = work / f"hub-{durable}"
            shutil.rmtree(hub_dir, ignore_errors=True)
            with LocalHub(hub_dir, durable=durable) as server:
                token = write_token(server.data_dir, "bench")
                result_file = work / "result.json"
                cmd = (f"{sys.executable} -m tensorferry.publish.cli publish {src} bench/bert-like --endpoint {server.url} "
                       f"--token {token} --verify {args.verify} --json > {result_file}")
                os.sync()
                client, hub = cpu_seconds(own=False), process_cpu(server.pid)
                seconds, peak = run(["sh", "-c", cmd], env={"TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"})
                cpu = (cpu_seconds(own=False) - client, process_cpu(server.pid) - hub)
                runs[durable].append((seconds, peak, json.loads(result_file.read_text()), cpu))
    result = runs[True][0][2]
    uploaded = [f for f in result["files"] if f["action"] != "unchanged"]
    total = sum(f["size"] for f in uploaded)
    cp_seconds = min(cp_runs)
    print(f"checkpoint: {size / 2**30:.2f} GiB fp32, {len(specs)} tensors, largest {largest / 2**20:.0f} MiB")
    print(f"published {len(uploaded)} files, {total / 2**30:.2f} GiB, in one commit ({result['commit_oid'][:12]}); "
          f"verification: {result['verification']['verdict']}")
    print(f"cp of the uploaded weights (no sync):     {cp_seconds:.2f} s   (rounds: {', '.join(f'{x:.2f}' for x in cp_runs)})")
    cores = os.cpu_count() or 1
    for durable, label in ((True, "Hub fsyncing (default)"), (False, "Hub with --no-fsync   ")):
        times = [t for t, _, _, _ in runs[durable]]
        client, hub = next(cpu for t, _, _, cpu in runs[durable] if t == min(times))
        print(f"tensorferry publish, {label}: {min(times):.2f} s = {min(times) / cp_seconds:.2f} × cp  (target ≤ 3.0)  "
              f"(rounds: {', '.join(f'{x:.2f}' for x in times)})")
        # The same work cannot take less than its CPU spread over every core.
        print(f"    CPU of that run: client {client:.1f} s + Hub {hub:.1f} s = {client + hub:.1f} s; with all {cores} "
              f"cores busy ≥ {(client + hub) / cores:.2f} s = {(client + hub) / cores / cp_seconds:.2f} × cp")
    peak = max(p for rs in runs.values() for _, p, _, _ in rs)
    print(f"client peak RssAnon: {peak / 2**20:.0f} MiB = {peak / largest:.2f} × largest tensor; "
          f"budget 3 × largest + 400 MB = {(3 * largest + 400e6) / 2**20:.0f} MiB → {'OK' if peak <= 3 * largest + 400e6 else 'OVER'}")
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
