"""One framework's side of functional verification, run in its own process.

    python -m tensorferry.converters.verify.worker SPEC.json

SPEC names the framework, the model source (``models``), the config, an inputs ``.npz``
and the jobs: checkpoint folders to load and run.  For each job the worker writes
``OUT/<job>.npz`` (outputs, PyTorch layout, float32); then ``OUT/result.json`` with the versions
used and, per job, the load report or the error.  One process per framework keeps TF's and
JAX's memory apart, and a crash here becomes a failed entry in the parent's report.

It imports only numpy, the framework and what the model source needs, so it also runs in the
transformers environment.

>>> import tempfile, pathlib
>>> from tensorferry.fixtures import cnn
>>> out = pathlib.Path(tempfile.mkdtemp())
>>> spec = {"framework": "pt", "source": {"kind": "factory", "factories": {"pt": "tensorferry.fixtures.cnn:torch_model"}},
...         "config": cnn.CONFIG, "inputs": str(out / "in.npz"), "make_inputs": 0,
...         "jobs": [{"name": "pt", "path": "fixtures/checkpoints/cnn"}], "out": str(out)}
>>> run(spec)["jobs"]["pt"]["outputs"]
['output']
"""
from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path

import numpy as np


def _quiet() -> None:
    # Before any framework import: CPU only, Keras 2, no C++ log noise on stderr (kept for errors).
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def run(spec: dict) -> dict:
    """Do every job of SPEC; return (and write) the result record."""
    from tensorferry.converters.verify import models

    framework, out = spec["framework"], Path(spec["out"])
    out.mkdir(parents=True, exist_ok=True)
    source = models.from_json(spec["source"])
    config = spec.get("config") or {}
    result: dict = {"framework": framework, "jobs": {}}
    if spec.get("make_inputs") is not None:
        inputs = source.example_inputs(config, int(spec["make_inputs"]))
        np.savez(spec["inputs"], **inputs)
    inputs = {k: np.asarray(v) for k, v in np.load(spec["inputs"]).items()}
    for job in spec["jobs"]:
        started = time.perf_counter()
        entry: dict = {}
        try:
            runner, entry["load"] = source.load(framework, job["path"], config)
            outputs = runner(inputs)
            if not outputs:
                raise ValueError("the model returned no floating-point output")
            np.savez(out / f"{job['name']}.npz", **outputs)
            entry["outputs"] = sorted(outputs)
        except Exception as e:  # noqa: BLE001 - reported per job, the next job still runs
            entry["error"] = f"{type(e).__name__}: {e}"[:4000]
            entry["traceback"] = traceback.format_exc()[-4000:]
        entry["seconds"] = round(time.perf_counter() - started, 3)
        result["jobs"][job["name"]] = entry
    result["versions"] = source.versions(framework)
    (out / "result.json").write_text(json.dumps(result, indent=2, default=str))
    return result


def main(argv: list[str] | None = None) -> int:
    _quiet()
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    run(json.loads(Path(argv[0]).read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
