"""The functional level: each variant loaded into a model of its own framework and run in a worker.

One worker process per framework (``worker.py``), so TensorFlow's and JAX's memory never pile up
and a crash becomes a failed entry, never an exception.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..constants import CONFIG, DEFAULT_TIMEOUT, STANDARD
from ..envs import child_env
from ..errors import InputError
from .report import FunctionalCheck, OutputCheck, tolerance_for



def framework_view(folder: Path, framework: str, into: Path) -> Path:
    """A folder holding only ``config.json`` and FRAMEWORK's weights from FOLDER, as links.

    A loader given a folder picks its file by name (transformers' TF classes prefer
    ``model.safetensors`` over ``tf_model.h5``), so each worker gets a view of its own variant.

    >>> import tempfile; from tensorferry.converters import convert
    >>> out = Path(tempfile.mkdtemp()); _ = convert("fixtures/checkpoints/cnn", out, to=["pt", "tf"])
    >>> sorted(p.name for p in framework_view(out, "tf", Path(tempfile.mkdtemp())).iterdir())
    ['config.json', 'tf_model.h5']
    """
    view = into / f"{framework}-view"
    view.mkdir(parents=True, exist_ok=True)
    names = [CONFIG] if (folder / CONFIG).exists() else []
    for fw, files in STANDARD:
        if fw != framework:
            continue
        if (folder / files.index).exists():
            weight_map = json.loads((folder / files.index).read_text()).get("weight_map") or {}
            names += [files.index, *dict.fromkeys(str(v) for v in weight_map.values())]
            break
        if (folder / files.single).exists():
            names.append(files.single)
            break
    for name in names:
        if "/" in name or name.startswith("."):
            raise InputError(folder / name, "a shard name must be a file in the same folder")
        (view / name).symlink_to((folder / name).resolve())
    return view


def _run_worker(fw: str, python: str, spec: dict, work: Path, timeout: float) -> dict:
    """Run one worker; a crash, timeout or missing result becomes {"crash": message}."""
    spec_file = work / f"{fw}-spec.json"
    spec_file.write_text(json.dumps(spec))
    # tensorferry need not be installed in the worker's Python: its own source goes on PYTHONPATH.
    env = child_env(dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", "cpu")))
    env.pop("HF_TOKEN", None)  # workers read local folders only: never hand them a token
    try:
        p = subprocess.run([python, "-m", "tensorferry.converters.verify.worker", str(spec_file)],
                           capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        return {"crash": f"timed out after {timeout:.0f}s", "stderr": _tail(e.stderr)}
    except OSError as e:
        return {"crash": f"cannot start {python}: {e.strerror}", "stderr": ""}
    result_file = Path(spec["out"]) / "result.json"
    if p.returncode or not result_file.exists():
        why = missing_module(python, fw, p.stderr) or f"worker ({python}) exited with code {p.returncode}"
        return {"crash": why, "stderr": _tail(p.stderr)}
    result = json.loads(result_file.read_text())
    for job in result.get("jobs", {}).values():
        if "error" in job:
            job["error"] = missing_module(python, fw, job["error"]) or job["error"]
    result["stderr"] = _tail(p.stderr)
    return result


# What a worker imports, per framework, besides numpy (and transformers for transformers classes).
WORKER_NEEDS = {"pt": "torch", "tf": "tensorflow and tf-keras", "flax": "jax and flax"}


def missing_module(python: str, framework: str, text: str | None) -> str | None:
    """A message saying what a worker's Python lacks, when TEXT shows an import failure.

    >>> print(missing_module("/usr/bin/python3", "tf", "ModuleNotFoundError: No module named 'tf_keras'"))
    /usr/bin/python3 cannot import tf_keras: install it there (the tf worker needs numpy, tensorflow and tf-keras; transformers for transformers classes)
    """
    m = re.search(r"No module named '([\w.]+)'", text or "")
    if not m:
        return None
    return (f"{python} cannot import {m.group(1)}: install it there (the {framework} worker needs numpy, "
            f"{WORKER_NEEDS[framework]}; transformers for transformers classes)")


def _tail(text: str | bytes | None, n: int = 3000) -> str:
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return (text or "")[-n:]


def verify_functional(path: Path, reference_dir: Path, frameworks: Sequence[str], model, config: dict | None,
                      tolerances: dict[str, tuple[float, float, str]], inputs: str | Path | None = None, seed: int = 0,
                      options: dict | None = None, timeout: float = DEFAULT_TIMEOUT) -> tuple[dict[str, FunctionalCheck], dict]:
    """Run the reference and every variant in per-framework workers; compare outputs with the reference."""
    options = options or {}
    work = Path(tempfile.mkdtemp(prefix="tensorferry-verify-"))
    try:
        in_file = work / "inputs.npz"
        if inputs is not None:
            try:
                with np.load(inputs) as data:
                    np.savez(in_file, **{k: data[k] for k in data.files})
            except (OSError, ValueError) as e:
                raise InputError(inputs, f"cannot read inputs: {e}") from None
        views = work / "views"
        order = ["pt"] + [fw for fw in frameworks if fw != "pt"]
        results: dict[str, FunctionalCheck] = {}
        reference: dict[str, np.ndarray] | None = None
        ref_error, versions = "", {}
        for fw in order:
            # Loaders that pick a file by name get a view of their own variant; ours pick by framework.
            view = framework_view if model.needs_view else (lambda folder, framework, into: folder)
            jobs = ([{"name": "reference", "path": str(view(reference_dir, "pt", views / "reference"))}] if fw == "pt" else []) + \
                   ([{"name": fw, "path": str(view(path, fw, views))}] if fw in frameworks else [])
            spec = {"framework": fw, "source": model.to_json(), "config": config or {}, "inputs": str(in_file),
                    "make_inputs": seed if fw == "pt" and inputs is None else None, "jobs": jobs, "out": str(work / fw)}
            started = time.perf_counter()
            out = _run_worker(fw, model.python(fw, options), spec, work, timeout)
            seconds = round(time.perf_counter() - started, 2)
            versions[fw] = out.get("versions", {})
            if fw == "pt":
                ref_job = out.get("jobs", {}).get("reference", {})
                if "outputs" in ref_job:
                    with np.load(work / "pt" / "reference.npz") as data:
                        reference = {k: data[k] for k in data.files}
                else:
                    ref_error = "reference outputs unavailable: " + (out.get("crash") or ref_job.get("error", "?"))
            if fw not in frameworks:
                continue
            check = FunctionalCheck(fw, model.describe(fw), seconds=seconds, stderr_tail=out.get("stderr", "")[-1500:])
            job = out.get("jobs", {}).get(fw, {})
            check.load = job.get("load") or {}
            if out.get("crash") or "error" in job:
                check.status, check.error = "error", out.get("crash") or job["error"]
                check.traceback = job.get("traceback", "")
            elif reference is None:
                check.status, check.error = "error", ref_error
            else:
                with np.load(work / fw / f"{fw}.npz") as data:
                    got = {k: data[k] for k in data.files}
                check.outputs = compare_outputs(reference, got, tolerances.get(fw, tolerance_for(None)))
                check.status = "pass" if all(o.passed for o in check.outputs) else "fail"
            results[fw] = check
        described = {}
        if in_file.exists():
            with np.load(in_file) as data:
                described = {k: {"shape": list(data[k].shape), "dtype": data[k].dtype.name} for k in data.files}
        return results, {"versions": versions, "inputs": described}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def compare_outputs(reference: dict[str, np.ndarray], got: dict[str, np.ndarray], tol: tuple[float, float, str]) -> list[OutputCheck]:
    """Max and mean |Δ| per reference output; tolerance = atol + rtol · max |reference|.

    >>> [o.passed for o in compare_outputs({"y": np.ones(3)}, {"y": np.ones(3) + 1e-6}, (5e-5, 0.0, "float32"))]
    [True]
    """
    out = []
    for name, ref in reference.items():
        atol, rtol, _ = tol
        limit = atol + rtol * float(np.abs(ref).max(initial=0.0))
        if name not in got:
            out.append(OutputCheck(name, list(ref.shape), None, None, limit, False, "output missing"))
            continue
        if got[name].shape != ref.shape:
            out.append(OutputCheck(name, list(ref.shape), None, None, limit, False, f"shape {list(got[name].shape)}"))
            continue
        delta = np.abs(got[name].astype(np.float64) - ref.astype(np.float64))
        finite = bool(np.isfinite(delta).all())
        mx, mean = (float(delta.max(initial=0.0)), float(delta.mean()) if delta.size else 0.0) if finite else (float("inf"),) * 2
        out.append(OutputCheck(name, list(ref.shape), mx, mean, limit, finite and mx <= limit, "" if finite else "NaN or inf"))
    return out


