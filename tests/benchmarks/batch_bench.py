"""Benchmark: ``tensorferry batch`` over 20 small PT-only repos with 1 and 2 workers, on local processes and
on a Dask ``LocalCluster``; prints the speed-up and the per-repo overhead beyond conversion itself.

Run: ``python tests/benchmarks/batch_bench.py [--repos 20] [--mb 8] [--verify weights|auto] [--executors local,dask]``.
The repos are BERT-shaped PT-only checkpoints of ``--mb`` MB each (``--mb 0``: the bundled tiny fixtures,
where the Hub round trips are all there is).
Each configuration gets its own organisation of fresh repos on one local Hub (a second run would be a no-op).
"Conversion itself" is ``convert`` + ``verify_dir`` of the same checkpoints in this process, without the Hub;
the overhead is everything else a repo costs on one worker (listing, download, PR lookups, card,
upload, commit, journal, worker hand-off).  Target on 2 cores: speed-up ≥ 1.6×.  Each run also prints
the CPU it used (workers, coordinator and the Hub server) and the cores that kept busy; the ceiling
is the 1-worker time over the time its CPU would take with every core busy.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _measure import cpu_seconds, machine_share, machine_ticks  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

FAMILIES = ("cnn", "recurrent", "transformer")


def _sources(mb: float, work: Path) -> list[Path]:
    """The source folders the repos cycle through: one synthetic BERT-shaped checkpoint, or the fixtures."""
    from tensorferry.fixtures import checkpoint_dir

    if not mb:
        return [checkpoint_dir(f) for f in FAMILIES]
    import numpy as np

    from tensorferry.converters.formats import safetensors_file

    h, ff = 256, 1024
    f32 = np.dtype("float32")
    specs = [("embeddings.word_embeddings.weight", (2000, h), f32), ("embeddings.LayerNorm.weight", (h,), f32),
             ("embeddings.LayerNorm.bias", (h,), f32)]
    for i in range(max(1, int((mb * 1e6 - 2000 * h * 4) // ((4 * h * h + 2 * h * ff) * 4)))):
        p = f"encoder.layer.{i}."
        for name in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
            specs += [(p + name + ".weight", (h, h), f32), (p + name + ".bias", (h,), f32)]
        specs += [(p + "intermediate.dense.weight", (ff, h), f32), (p + "intermediate.dense.bias", (ff,), f32),
                  (p + "output.dense.weight", (h, ff), f32), (p + "output.dense.bias", (h,), f32)]
    shapes = {n: s for n, s, _ in specs}
    rng = np.random.default_rng(0)
    src = work / "src"
    src.mkdir()
    safetensors_file.write(src / "model.safetensors", specs, lambda n: rng.standard_normal(shapes[n], dtype=np.float32) * 0.02)
    (src / "config.json").write_text('{"model_type": "bench-bert", "architectures": ["BenchBert"]}')
    return [src]


def _org(api, name: str, repos: int, sources: list[Path]) -> None:
    for i in range(repos):
        repo = f"{name}/m{i:02d}"
        api.create_repo(repo)
        api.upload_folder(repo_id=repo, folder_path=str(sources[i % len(sources)]), commit_message="upload")


def _conversion_seconds(repos: int, verify: str, work: Path, sources: list[Path]) -> float:
    """Mean seconds of convert + verify per repo, in process, for the same mix of checkpoints."""
    from tensorferry.converters import convert
    from tensorferry.converters.verify.run import verify_dir

    times = []
    for i in range(repos):
        src, out = sources[i % len(sources)], work / f"conv{i}"
        t = time.perf_counter()
        convert(src, out, to=["tf", "flax"])
        verify_dir(out, reference=src, frameworks=["tf", "flax"], functional={"weights": False, "auto": "auto"}[verify],
                   report_dir=out)
        times.append(time.perf_counter() - t)
        shutil.rmtree(out)
    return statistics.mean(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repos", type=int, default=20)
    ap.add_argument("--mb", type=float, default=8.0, help="MB of weights per repo (0: the tiny fixtures)")
    ap.add_argument("--verify", default="weights", choices=["weights", "auto"])
    ap.add_argument("--executors", default="local,dask")
    args = ap.parse_args()

    from tensorferry.publish.batch.run import BatchOptions, run_batch
    from tensorferry.publish.hub import LocalHub, create_token
    from tensorferry.publish.hub_io import hub_api

    work = Path(tempfile.mkdtemp(prefix="tf-batch-bench-"))
    sources = _sources(args.mb, work)
    conversion = _conversion_seconds(args.repos, args.verify, work, sources)
    results = {}
    with LocalHub(work / "hub") as hub:
        for executor in args.executors.split(","):
            for workers in (1, 2):
                name = f"bench-{executor}-{workers}"
                token = create_token(hub.data_dir, "bench", org=name)
                _org(hub_api(hub.url, token), name, args.repos, sources)
                opts = BatchOptions(name, endpoint=hub.url, token=token, verify=args.verify, workers=workers,
                                    dask_local=executor == "dask", journal=work / f"{name}.sqlite",
                                    report=work / f"{name}-report", cache_dir=str(work / f"cache-{name}"), progress=False)
                t, cpu, ticks = time.perf_counter(), cpu_seconds(hub.pid), machine_ticks()
                result = run_batch(opts, say=lambda *a: None)
                wall, cpu = time.perf_counter() - t, cpu_seconds(hub.pid) - cpu
                share = machine_share(ticks, machine_ticks())
                pushed = sum(r["status"] == "pushed" for r in result.rows)
                assert pushed == args.repos, result.line
                results[(executor, workers)] = wall, cpu, share["busy"]
                print(f"{executor:5} {workers} worker(s): {wall:6.1f} s for {args.repos} repos "
                      f"({wall / args.repos:.2f} s/repo wall; mean repo pipeline "
                      f"{statistics.mean(r['seconds'] for r in result.rows):.2f} s; CPU {cpu / args.repos:.2f} s/repo "
                      f"= {cpu / wall:.2f} cores busy; whole machine {share['busy']:.0%} busy, "
                      f"{share['iowait']:.0%} I/O wait, {share['idle']:.0%} idle)", flush=True)
    print(f"\nconversion itself (convert + verify {args.verify}, in process): {conversion:.2f} s/repo")
    for executor in args.executors.split(","):
        (one, cpu, busy), (two, _, _) = results[(executor, 1)], results[(executor, 2)]
        # One worker already keeps cpu/one cores busy (conversion threads, hashing, the Hub server beside
        # it): with the same CPU per repo, the machine's cores bound what two workers can gain.  The
        # second ceiling counts the kernel's own threads too (writeback of what the Hub and the workers write).
        ceiling = one / (cpu / (os.cpu_count() or 1))
        print(f"{executor:5}: speed-up 1 → 2 workers {one / two:.2f}x (ceiling at full use of {os.cpu_count()} cores: "
              f"{ceiling:.2f}x by the processes' CPU, {1 / busy:.2f}x by the whole machine's); per-repo overhead beyond conversion "
              f"{one / args.repos - conversion:.2f} s (1 worker, planning and worker start-up included)")
    print(f"repos: {args.repos} × {args.mb:g} MB PT-only → + TF + Flax, verify {args.verify}")
    print(f"cores: {os.cpu_count()}; load average now: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
