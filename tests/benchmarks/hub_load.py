"""Load benchmark for the local Hub: N concurrent clients x M commits of mixed small and LFS
files against one server, then every file's sha256 checked from a fresh download.

Nothing may be lost and the server must answer no 5xx (counted from its access log, so retries
the client would hide still count). Prints throughput next to `cp` of the same bytes.

    python tests/benchmarks/hub_load.py                  # 8 clients x 25 commits
    python tests/benchmarks/hub_load.py --clients 4 --commits 5 --max-lfs-mb 1   # quick run
"""
from __future__ import annotations

import os

os.environ["HF_HUB_DISABLE_XET"] = "1"  # the local Hub does not speak Xet
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import argparse  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

from huggingface_hub import CommitOperationAdd, HfApi, snapshot_download  # noqa: E402

from tensorferry.publish.files import sha256 as sha256_file  # noqa: E402
from tensorferry.publish.hub import LocalHub, create_token  # noqa: E402


def make_files(root: Path, clients: int, commits: int, max_lfs: int, seed: int) -> dict[tuple[int, int], list[Path]]:
    """Per (client, commit): 3 small text files (100 B-64 kB) and 1 binary LFS file (64 kB-max_lfs)."""
    rng = random.Random(seed)
    plan: dict[tuple[int, int], list[Path]] = {}
    for c in range(clients):
        for k in range(commits):
            d = root / f"c{c:02d}" / f"k{k:03d}"
            d.mkdir(parents=True)
            files = []
            for i in range(3):
                p = d / f"notes-{i}.txt"
                p.write_bytes(rng.randbytes(rng.randint(50, 32 << 10)).hex().encode())
                files.append(p)
            p = d / "weights.safetensors"
            p.write_bytes(os.urandom(rng.randint(64 << 10, max_lfs)))
            files.append(p)
            plan[(c, k)] = files
    return plan


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--commits", type=int, default=25)
    ap.add_argument("--repos", type=int, default=4, help="clients share these repos (concurrent commits per branch)")
    ap.add_argument("--max-lfs-mb", type=float, default=4.0)
    ap.add_argument("--workdir", type=Path, default=None, help="default: a temporary directory, removed after")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    work = Path(args.workdir or tempfile.mkdtemp(prefix="hub-load-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        plan = make_files(work / "src", args.clients, args.commits, int(args.max_lfs_mb * (1 << 20)), args.seed)
        total = sum(p.stat().st_size for files in plan.values() for p in files)
        n_files = sum(len(f) for f in plan.values())
        t0 = time.perf_counter()
        subprocess.run(["cp", "-r", str(work / "src"), str(work / "cp-copy")], check=True)
        subprocess.run(["sync"], check=True)
        cp_s = time.perf_counter() - t0

        data_dir = work / "hub"
        token = create_token(data_dir, "bench", org="load")
        with LocalHub(data_dir, log_level="info") as hub:
            api = HfApi(endpoint=hub.url, token=token)
            repos = [f"load/repo-{r}" for r in range(args.repos)]
            for r in repos:
                api.create_repo(r)
            expected: dict[str, dict[str, str]] = {r: {} for r in repos}

            def client(c: int) -> int:
                me = HfApi(endpoint=hub.url, token=token)
                repo = repos[c % len(repos)]
                for k in range(args.commits):
                    ops = [CommitOperationAdd(f"c{c:02d}/k{k:03d}/{p.name}", str(p)) for p in plan[(c, k)]]
                    me.create_commit(repo, ops, commit_message=f"client {c} commit {k}")
                return c

            t0 = time.perf_counter()
            with ThreadPoolExecutor(args.clients) as pool:
                list(pool.map(client, range(args.clients)))
            up_s = time.perf_counter() - t0
            for (c, k), files in plan.items():
                for p in files:
                    expected[repos[c % len(repos)]][f"c{c:02d}/k{k:03d}/{p.name}"] = sha256_file(p)

            t0 = time.perf_counter()
            lost, bad, commits_ok = [], [], True
            for r in repos:
                snap = Path(snapshot_download(r, endpoint=hub.url, token=token, cache_dir=work / "fresh-cache",
                                              max_workers=8))
                got = {str(p.relative_to(snap)) for p in snap.rglob("*") if p.is_file()} - {".gitattributes"}
                lost += sorted(set(expected[r]) - got)
                bad += [f"{r}/{p}" for p, h in expected[r].items() if p in got and sha256_file(snap / p) != h]
                clients_here = len([c for c in range(args.clients) if c % len(repos) == repos.index(r)])
                commits_ok &= len(api.list_repo_commits(r)) == clients_here * args.commits + 1
            down_s = time.perf_counter() - t0
        log = (data_dir / "server.log").read_text(errors="replace")
        five_xx = re.findall(r'" 5\d\d\b', log)

        mb = total / 1e6
        n_commits = args.clients * args.commits
        print(f"{args.clients} clients x {args.commits} commits = {n_commits} commits, {n_files} files, {mb:.1f} MB")
        print(f"upload   {up_s:7.2f} s  {mb / up_s:8.1f} MB/s  {n_commits / up_s:6.1f} commits/s")
        print(f"download {down_s:7.2f} s  {mb / down_s:8.1f} MB/s  (fresh snapshot_download + sha256 of every file)")
        print(f"cp -r    {cp_s:7.2f} s  {mb / cp_s:8.1f} MB/s  (same bytes, local disk)")
        print(f"upload is {up_s / cp_s:.1f}x the time of cp")
        print(f"lost files: {len(lost)}, sha256 mismatches: {len(bad)}, 5xx responses: {len(five_xx)}, "
              f"commit counts {'ok' if commits_ok else 'WRONG'}")
        ok = not lost and not bad and not five_xx and commits_ok
        print("RESULT:", "PASS" if ok else "FAIL")
        return 0 if ok else 1
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
