"""Verify converted checkpoints at two levels: the weights, and what the models compute.

* **weights** (always, no framework needed): every variant file is read back, mapped to
  canonical (PyTorch layout) and compared with the reference tensor by tensor: bit-exact, or
  exactly the documented ``--dtype`` cast; key sets equal (minus what the format never carries,
  as the converter's own plan says); ties preserved.
* **functional**: each variant is loaded into a model of its own framework, in its own worker
  process, and run on the same inputs; outputs are compared with the PyTorch reference's.

>>> v = verify_dir("out", reference="fixtures/checkpoints/cnn")          # doctest: +SKIP
>>> v.passed, v.summary().splitlines()[0]                                # doctest: +SKIP
(True, 'verification passed: weights pt, tf, flax; outputs pt, tf, flax')
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import dtypes
from .checkpoint import Source, open_source
from .convert import GRAPH_NODES, parse_frameworks, Producer, convert, plan_for
from .errors import InputError
from .moves import EXTRA
from .verify_models import FactorySource, detect
from .verify_report import (FunctionalCheck, OutputCheck, TensorCheck, Verification, WeightsCheck,
                            tolerance_for)

DEFAULT_TIMEOUT = 900.0  # seconds per worker: a real model on CPU loads and runs well within it


# canonical view ----------------------------------------------------------------------------
class Canonical:
    """A source's tensors as canonical (PyTorch-layout) tensors, computed lazily by the converter.

    >>> c = Canonical(open_source("fixtures/checkpoints/cnn"))          # doctest: +SKIP
    >>> c.specs["conv.weight"][0], c.load("conv.weight").shape          # doctest: +SKIP
    ((8, 3, 3, 3), (8, 3, 3, 3))
    """

    def __init__(self, source: Source) -> None:
        self.source = source
        self.plan = plan_for(source, ["pt"])
        self.specs = self.plan.canonical_specs
        # The canonical name's native origin names the culprit in the variant's own terms.
        self.native = {n: ", ".join(m.sources) for m in self.plan.canonical for n, _, _ in m.targets}
        self._producer = Producer(source, self.plan.canonical)

    def load(self, name: str) -> np.ndarray:
        return np.asarray(self._producer.canonical_tensor(name))

    def __iter__(self) -> Iterator[tuple[str, np.ndarray]]:
        for name in self.specs:
            yield name, self.load(name)


def iter_canonical(source: Source | str | Path) -> Iterator[tuple[str, np.ndarray]]:
    """(canonical name, tensor) for every tensor of SOURCE, one at a time.

    >>> dict(iter_canonical("fixtures/checkpoints/cnn"))["conv.weight"].shape     # doctest: +SKIP
    (8, 3, 3, 3)
    """
    yield from Canonical(source if isinstance(source, Source) else open_source(source))


# weights level -----------------------------------------------------------------------------
def verify_weights(variant: Source, reference: Source, dtype: str | None = None) -> WeightsCheck:
    """Compare one variant with the reference, tensor by tensor, in canonical layout.

    ``dtype``: the ``--dtype`` the conversion used; without it a cast is accepted when every
    floating tensor was cast to one dtype and matches ``reference.astype(dtype)`` bit for bit.
    """
    fw = variant.framework
    check = WeightsCheck(fw, [f.name for f in variant.files])
    try:
        ref = Canonical(reference)
        expected = _expected_in(reference, fw)
        var = Canonical(variant)
    except Exception as e:  # noqa: BLE001 - an unreadable or unmappable file is a failed variant, not a crash
        check.error = f"cannot map {', '.join(check.files)} to canonical: {type(e).__name__}: {e}"
        return check
    want = dtypes.from_name(dtype, "--dtype") if dtype else None
    casts: set[str] = set()
    for name, (shape, dt) in ref.specs.items():
        native = expected.get(name)
        if native is None:
            check.tensors.append(TensorCheck(name, "not_carried", detail=f"{fw} files do not hold it (by the converter's plan)"))
            continue
        if name not in var.specs:
            side = native.startswith(EXTRA + "/")
            check.tensors.append(TensorCheck(name, "not_carried" if side else "missing", native=native,
                                             detail="side data not written (--no-extras)" if side else "not in the file"))
            continue
        vshape, vdt = var.specs[name]
        where = var.native.get(name, native)
        if tuple(vshape) != tuple(shape):
            check.tensors.append(TensorCheck(name, "shape", native=where, detail=f"{tuple(vshape)} instead of {tuple(shape)}"))
            continue
        a, b = ref.load(name), var.load(name)
        status, detail = "exact", ""
        if vdt != dt:
            if not (dtypes.is_float(vdt) and dtypes.is_float(dt)) or (want is not None and vdt != want):
                check.tensors.append(TensorCheck(name, "dtype", native=where, detail=f"{vdt.name} instead of {(want or dt).name}"))
                continue
            a, status, detail = a.astype(vdt), "cast", f"{dt.name} → {vdt.name}"
            casts.add(detail)
        elif want is not None and dtypes.is_float(dt) and dt != want:
            check.tensors.append(TensorCheck(name, "dtype", native=where, detail=f"{vdt.name}, not cast to {want.name}"))
            continue
        if not dtypes.same_bits(a, b):
            delta = np.abs(a.astype(np.float64) - b.astype(np.float64))
            worst = np.unravel_index(int(np.nanargmax(delta)), delta.shape) if delta.size else ()
            check.tensors.append(TensorCheck(name, "mismatch", float(np.nanmax(delta)) if delta.size else 0.0, native=where,
                                             detail=f"{int((a != b).sum())} of {a.size} values differ, worst at {tuple(int(i) for i in worst)}"))
            continue
        check.tensors.append(TensorCheck(name, status, 0.0, native=where, detail=detail))
    for name in var.specs.keys() - ref.specs.keys():
        check.tensors.append(TensorCheck(name, "unexpected", native=var.native.get(name, ""), detail="not in the reference"))
    if len(casts) > 1:
        check.error = f"floating tensors were cast to several dtypes: {sorted(casts)}"
    check.cast = next(iter(casts)) if len(casts) == 1 else None
    for alias, target in reference.ties.items():  # an alias is no tensor of its own: the file must still say it is tied
        if target in expected and variant.ties.get(alias) != target:
            check.tensors.append(TensorCheck(alias, "tie", native=alias, detail=f"no longer tied to {target}"))
    return check


def _expected_in(reference: Source, fw: str) -> dict[str, str]:
    """Canonical name → the native name it gets in FW, for every tensor the converter writes there."""
    plan = plan_for(reference, [fw])
    out: dict[str, str] = {}
    for move, _ in plan.targets[fw]:
        natives = [n for n, _, _ in move.targets]
        for src in move.sources:
            out.setdefault(src, natives[0] if len(natives) == 1 else ", ".join(natives))
    return out


# functional level --------------------------------------------------------------------------
def choose_models(config: dict | None, frameworks: Sequence[str], models: dict[str, str] | None = None,
                  transformers_python: str | None = None) -> tuple[object | None, str]:
    """The model source for the run (explicit ``--model`` first, then detection) and why, if none.

    >>> choose_models({"model_type": "tensorferry-tiny-cnn"}, ["tf"])[0].factories["tf"]
    'tensorferry.fixtures.cnn:keras_model'
    """
    if models:
        from .verify_models import SOURCES

        if set(models) == {"*"}:  # `--model transformers` (or another registered kind) for every framework
            kind = models["*"]
            if kind == "transformers":
                arch = ((config or {}).get("architectures") or [None])[0]
                if not arch:
                    return None, "config.json names no architectures for transformers classes"
                return SOURCES[kind](arch, transformers_python or ""), ""
            raise InputError("--model", f"unknown model source {kind!r}; known: {sorted(SOURCES)} or FW=module:factory")
        base = detect(config, {"transformers_python": transformers_python})
        factories = dict(getattr(base, "factories", {}))
        factories.update(models)
        lacking = [fw for fw in ("pt", *frameworks) if fw not in factories]
        if lacking:
            return None, f"--model gives no factory for {', '.join(dict.fromkeys(lacking))} (pt is needed for the reference outputs)"
        return FactorySource(factories), ""
    found = detect(config, {"transformers_python": transformers_python})
    if found is None:
        return None, "no model source: config.json names no known model; pass --model pt=module:factory (and tf=, flax=)"
    return found, ""


def _run_worker(fw: str, python: str, spec: dict, work: Path, timeout: float) -> dict:
    """Run one worker; a crash, timeout or missing result becomes {"crash": message}."""
    spec_file = work / f"{fw}-spec.json"
    spec_file.write_text(json.dumps(spec))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", "cpu"))
    env.pop("HF_TOKEN", None)  # workers read local folders only: never hand them a token
    try:
        p = subprocess.run([python, "-m", "tensorferry.converters.verify_worker", str(spec_file)],
                           capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        return {"crash": f"timed out after {timeout:.0f}s", "stderr": _tail(e.stderr)}
    except OSError as e:
        return {"crash": f"cannot start {python}: {e.strerror}", "stderr": ""}
    result_file = Path(spec["out"]) / "result.json"
    if p.returncode or not result_file.exists():
        return {"crash": f"worker exited with code {p.returncode}", "stderr": _tail(p.stderr)}
    result = json.loads(result_file.read_text())
    result["stderr"] = _tail(p.stderr)
    return result


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
        order = ["pt"] + [fw for fw in frameworks if fw != "pt"]
        results: dict[str, FunctionalCheck] = {}
        reference: dict[str, np.ndarray] | None = None
        ref_error, versions = "", {}
        for fw in order:
            jobs = ([{"name": "reference", "path": str(reference_dir)}] if fw == "pt" else []) + \
                   ([{"name": fw, "path": str(path)}] if fw in frameworks else [])
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


# the whole run -----------------------------------------------------------------------------
def verify_dir(path: str | Path, reference: str | Path | None = None, frameworks: Sequence[str] | str | None = None, *,
               atol: float | None = None, models: dict[str, str] | None = None, inputs: str | Path | None = None,
               seed: int = 0, dtype: str | None = None, functional: bool = True, transformers_python: str | None = None,
               report_dir: str | Path | None | bool = None, timeout: float = DEFAULT_TIMEOUT, repo: dict | None = None) -> Verification:
    """Verify the variants in PATH against REFERENCE (default: PATH's own ``model.safetensors``).

    Writes ``verification.json``, ``verification.md`` and ``verification.png`` to ``report_dir``
    (default PATH; ``False`` writes nothing).

    >>> v = verify_dir("out", reference="fixtures/checkpoints/cnn", frameworks=["tf"])   # doctest: +SKIP
    >>> v.passed, v.functional["tf"].outputs[0].max_abs < 5e-5                            # doctest: +SKIP
    (True, True)
    """
    started = time.perf_counter()
    path = Path(path)
    if not path.is_dir():
        raise InputError(path, "not a folder (give a converted checkpoint folder or a Hub repo id)")
    present = [fw for fw in GRAPH_NODES if _has(path, fw)]
    fws = parse_frameworks(frameworks) if frameworks else present
    absent = [fw for fw in fws if fw not in present]
    if absent:
        raise InputError(path, f"holds no {', '.join(absent)} weights (found: {', '.join(present) or 'none'})")
    ref_source = open_source(reference) if reference is not None else _own_reference(path)
    config = ref_source.config or _config(path)
    result = Verification(str(path), str(reference) if reference is not None else f"{path}/ (its PyTorch weights)", list(fws), repo=repo)
    for fw in fws:
        variant = open_source(path, fw)
        if reference is None and fw == "pt":
            result.weights[fw] = WeightsCheck("pt", [f.name for f in variant.files], reference=True)
            continue
        result.weights[fw] = verify_weights(variant, ref_source, dtype)
    tolerances = {fw: tolerance_for(_variant_dtype(result.weights.get(fw), ref_source), atol) for fw in fws}
    result.tolerances = {fw: {"atol": t[0], "rtol": t[1], "dtype": t[2]} for fw, t in tolerances.items()}
    if functional:
        model, why = choose_models(config, fws, models, transformers_python)
        if model is None:
            result.functional = {fw: FunctionalCheck(fw, "-", status="skipped", error=why) for fw in fws}
        else:
            with _reference_dir(ref_source, reference) as ref_dir:
                result.functional, extra = verify_functional(path, ref_dir, fws, model, config, tolerances, inputs, seed,
                                                             {"transformers_python": transformers_python}, timeout)
            result.versions.update(extra["versions"])
            result.inputs = {"source": str(inputs) if inputs else f"seeded default (seed {seed})", "tensors": extra["inputs"]}
    result.seconds = round(time.perf_counter() - started, 2)
    if report_dir is not False:
        result.write(Path(report_dir) if report_dir else path)
    return result


def _has(path: Path, fw: str) -> bool:
    from .checkpoint import STANDARD

    return any((path / single).exists() or (path / index).exists() for f, single, index in STANDARD if f == fw)


def _config(path: Path) -> dict | None:
    try:
        return json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return None


def _own_reference(path: Path) -> Source:
    if not _has(path, "pt"):
        raise InputError(path, "holds no PyTorch weights to verify against: pass --reference (the conversion's source)")
    return open_source(path, "pt")


def _variant_dtype(check: WeightsCheck | None, ref: Source) -> str | None:
    if check is not None and check.cast:
        return check.cast.split("→")[-1].strip()
    floats = [d.name for _, d in ref.infos.values() if dtypes.is_float(d)]
    return max(set(floats), key=floats.count) if floats else None


class _reference_dir:
    """A folder transformers-style loaders can open: REFERENCE itself, or a canonical copy when it is not PyTorch."""

    def __init__(self, source: Source, given: str | Path | None) -> None:
        self.source, self.given, self.tmp = source, given, None

    def __enter__(self) -> Path:
        given = Path(self.given) if self.given is not None else None
        if self.source.framework == "pt" and given is not None and given.is_dir():
            return given
        if self.source.framework == "pt" and given is None:
            return self.source.files[0].parent
        self.tmp = Path(tempfile.mkdtemp(prefix="tensorferry-reference-"))
        if self.source.framework == "pt":  # a lone file: link it under its standard name beside the config
            from .pytorch import FILE

            for f in self.source.files:  # one file gets the standard name; shards keep theirs (index included)
                os.symlink(f.resolve(), self.tmp / (FILE if len(self.source.files) == 1 and f.suffix == ".safetensors" else f.name))
            if self.source.config_path:
                shutil.copyfile(self.source.config_path, self.tmp / "config.json")
        else:
            convert(given, self.tmp, to=["pt"])
        return self.tmp

    def __exit__(self, *exc) -> None:
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)


__all__ = ["verify_dir", "verify_weights", "verify_functional", "compare_outputs", "choose_models", "iter_canonical",
           "Canonical", "Verification", "WeightsCheck", "FunctionalCheck", "TensorCheck", "OutputCheck"]
