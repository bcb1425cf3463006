"""The verification report: result records, ``verification.json``, a Markdown table and a PNG.

Schema ``tensorferry.verification/2`` is documented in ``docs/verify.md``; ``to_json`` is the
one place that writes it.  A level that did not run is reported as not run, never as passed:
a framework whose outputs were not compared is "weights only".

>>> tolerance_for("float16")
(0.001, 0.01, 'float16')
>>> tolerance_for("float32", atol=1e-4)
(0.0001, 0.0, 'float32')
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..constants import NAMES, VERIFICATION

SCHEMA = "tensorferry.verification/2"
# (atol, rtol) per weights dtype; tolerance = atol + rtol · max |reference output|.  fp32: what
# transformers' pt-to-tf check used.  fp16/bf16: the weights themselves were rounded to ~5e-4 /
# ~4e-3 relative, and that error grows through the layers, so an absolute bound alone cannot fit.
TOLERANCES = {"float64": (5e-5, 0.0), "float32": (5e-5, 0.0), "float16": (1e-3, 1e-2), "bfloat16": (1e-2, 5e-2)}
PASSING = ("exact", "cast", "not_carried")


def tolerance_for(dtype: str | None, atol: float | None = None) -> tuple[float, float, str]:
    """(atol, rtol, dtype) for variants whose weights are DTYPE; an explicit ``atol`` sets rtol to 0."""
    dtype = dtype if dtype in TOLERANCES else "float32"
    return (float(atol), 0.0, dtype) if atol is not None else (*TOLERANCES[dtype], dtype)


@dataclass
class TensorCheck:
    """One canonical tensor: ``status`` is exact, cast, not_carried (pass) or missing, unexpected, shape, dtype, mismatch, tie."""

    name: str
    status: str
    max_abs: float | None = None
    native: str = ""
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.status in PASSING


@dataclass
class WeightsCheck:
    framework: str
    files: list[str]
    tensors: list[TensorCheck] = field(default_factory=list)
    cast: str | None = None
    error: str | None = None
    reference: bool = False  # this variant is the reference itself

    @property
    def passed(self) -> bool:
        return self.error is None and all(t.passed for t in self.tensors)

    @property
    def failures(self) -> list[TensorCheck]:
        return [t for t in self.tensors if not t.passed]

    def brief(self) -> str:
        if self.reference:
            return "reference"
        if self.error:
            return f"error: {self.error}"
        counts = {s: sum(t.status == s for t in self.tensors) for s in ("exact", "cast", "not_carried")}
        checked = counts["exact"] + counts["cast"] + len(self.failures)
        text = f"{counts['exact'] + counts['cast']}/{checked} " + (f"exact after cast {self.cast}" if self.cast else "bit-exact")
        if counts["not_carried"]:
            text += f", {counts['not_carried']} not carried by the format"
        return text if self.passed else f"{len(self.failures)} of {checked} wrong; " + text


@dataclass
class OutputCheck:
    name: str
    shape: list[int]
    max_abs: float | None
    mean_abs: float | None
    tolerance: float
    passed: bool
    detail: str = ""


# FunctionalCheck.status: pass, fail, error (load/run/crash: a check that ran and failed) or not_run.
NOT_RUN = "not_run"
WEIGHTS_ONLY = "weights only"


@dataclass
class FunctionalCheck:
    """One framework's outputs against the reference's; ``error`` says why when it failed or did not run.

    >>> FunctionalCheck("tf", "-", status=NOT_RUN, error="--weights-only").passed is None
    True
    """

    framework: str
    model: str
    status: str = "error"
    outputs: list[OutputCheck] = field(default_factory=list)
    error: str = ""
    traceback: str = ""
    stderr_tail: str = ""
    load: dict = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ran(self) -> bool:
        return self.status != NOT_RUN

    @property
    def passed(self) -> bool | None:
        """True or False for a check that ran; None when it did not."""
        return self.status == "pass" if self.ran else None

    def stderr_lines(self, n: int = 6) -> list[str]:
        """The last lines the worker printed on stderr (what a crash says)."""
        return [line for line in self.stderr_tail.strip().splitlines() if line.strip()][-n:]


def _num(x: float | None) -> float | None | str:
    return None if x is None else ("inf" if math.isinf(x) else x)


@dataclass
class Verification:
    """Everything one run found.

    ``passed``: every check that ran passed (what the exit code says); ``complete``: outputs were
    compared in every framework; a run can pass without being complete ("weights only").
    """

    path: str
    reference: str
    frameworks: list[str]
    repo: dict | None = None
    weights: dict[str, WeightsCheck] = field(default_factory=dict)
    functional: dict[str, FunctionalCheck] = field(default_factory=dict)
    tolerances: dict[str, dict] = field(default_factory=dict)
    inputs: dict = field(default_factory=dict)
    versions: dict[str, dict] = field(default_factory=dict)
    seconds: float = 0.0
    files: list[str] = field(default_factory=list)
    # PyTorch tensors the reference (a TF or Flax file) cannot give and no formula rebuilds, by name.
    unrecovered: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(w.passed for w in self.weights.values()) and all(f.passed for f in self.functional.values() if f.ran)

    @property
    def complete(self) -> bool:
        return all(fw in self.functional and self.functional[fw].ran for fw in self.frameworks)

    def weights_only(self) -> list[str]:
        """Frameworks whose outputs were not compared."""
        return [fw for fw in self.frameworks if fw not in self.functional or not self.functional[fw].ran]

    def verdict(self) -> str:
        """One line: FAILED, PASSED (weights and outputs), or passed with the frameworks checked by weights only.

        >>> Verification("out", "ref", ["tf"]).verdict()
        'weights passed, outputs NOT compared (weights only: tf)'
        """
        if not self.passed:
            return "FAILED"
        if self.complete:
            return "PASSED (weights and outputs)"
        only = self.weights_only()
        if len(only) == len(self.frameworks):
            return f"weights passed, outputs NOT compared ({WEIGHTS_ONLY}: {', '.join(only)})"
        return f"weights and outputs passed; outputs NOT compared for {', '.join(only)} ({WEIGHTS_ONLY})"

    def culprits(self) -> list[str]:
        """One line per failure, naming the tensor (canonical and native) or output."""
        out = []
        for fw, w in self.weights.items():
            if w.error:
                out.append(f"{fw} weights: {w.error}")
            for t in w.failures:
                delta = f", max |Δ| {t.max_abs:.3g}" if t.max_abs is not None else ""
                out.append(f"{fw} weights: {t.name} [{t.native or '-'}] {t.status}{delta}: {t.detail}")
        for fw, f in self.functional.items():
            if f.status == "error":
                out.append(f"{fw} outputs: {f.error.splitlines()[0] if f.error else 'error'}")
                out += [f"{fw} stderr: {line}" for line in f.stderr_lines(4)]
            for o in f.outputs:
                if not o.passed:
                    got = f"max |Δ| {o.max_abs:.3g} > {o.tolerance:.3g}" if o.max_abs is not None else o.detail
                    out.append(f"{fw} outputs: {o.name} {got}")
        return out

    def to_json(self) -> dict:
        """The ``verification.json`` document (schema ``tensorferry.verification/2``)."""
        from importlib.metadata import PackageNotFoundError, version

        def ver(name: str) -> str | None:
            try:
                return version(name)
            except PackageNotFoundError:
                return None

        weights = {fw: {"passed": w.passed, "reference": w.reference, "files": w.files, "summary": w.brief(), "cast": w.cast,
                        "error": w.error, "failures": [asdict(t) for t in w.failures],
                        "tensors": [{**asdict(t), "passed": t.passed} for t in w.tensors]} for fw, w in self.weights.items()}
        functional = {fw: {"status": f.status, "ran": f.ran, "passed": f.passed, "model": f.model, "seconds": f.seconds,
                           "error": f.error or None,
                           "traceback": f.traceback or None, "stderr_tail": f.stderr_tail or None, "load": f.load,
                           "tolerance": self.tolerances.get(fw),
                           "outputs": [{**asdict(o), "max_abs": _num(o.max_abs), "mean_abs": _num(o.mean_abs)} for o in f.outputs]}
                      for fw, f in self.functional.items()}
        host = {k: v for k, v in {"tensorferry": ver("tensorferry"), "numpy": ver("numpy"), "safetensors": ver("safetensors"),
                                  "h5py": ver("h5py"), "msgpack": ver("msgpack")}.items() if v}
        return {"schema": SCHEMA, "passed": self.passed, "complete": self.complete, "verdict": self.verdict(),
                "weights_only": self.weights_only(), "path": self.path, "repo": self.repo, "reference": self.reference,
                "frameworks": self.frameworks, "culprits": self.culprits(), "inputs": self.inputs,
                "weights": weights, "functional": functional, "unrecovered": self.unrecovered,
                "versions": {"verifier": host, **{fw: v for fw, v in self.versions.items() if v}},
                "seconds": self.seconds, "report_files": self.files}

    def summary(self) -> str:
        """Human text for the terminal: verdict, then per framework weights and outputs, then culprits."""
        lines = [f"verification {self.verdict()}: {self.path} against {self.reference}"]
        for fw in self.frameworks:
            w, f = self.weights.get(fw), self.functional.get(fw)
            lines.append(f"  {fw:<4} weights: {w.brief() if w else '-'}")
            if f is None or not f.ran:
                why = f.error.splitlines()[0] if f is not None and f.error else "not requested"
                lines.append(f"       outputs: not compared ({WEIGHTS_ONLY}): {why}")
                continue
            if f.status == "error":
                lines.append(f"       outputs: error: {(f.error or '').splitlines()[0] if f.error else ''}")
                lines += [f"         | {line}" for line in f.stderr_lines()]
            for o in f.outputs:
                got = f"max |Δ| {o.max_abs:.2e}, mean {o.mean_abs:.2e}" if o.max_abs is not None else o.detail
                lines.append(f"       {o.name}: {got} (tolerance {o.tolerance:.1e}) {'pass' if o.passed else 'FAIL'}")
        if self.unrecovered:
            lines.append(f"  not recoverable from the reference ({len(self.unrecovered)}, left out of model.safetensors): "
                         + ", ".join(self.unrecovered[:10]) + (" …" if len(self.unrecovered) > 10 else ""))
        bad = self.culprits()
        if bad:
            lines.append("culprits:")
            lines += [f"  {c}" for c in bad[:20]] + ([f"  … and {len(bad) - 20} more (see verification.json)"] if len(bad) > 20 else [])
        if self.files:
            lines.append("report: " + ", ".join(self.files))
        return "\n".join(lines)

    def markdown(self) -> str:
        """The table a model card embeds."""
        rows = ["| Framework | Weights | Output | max \\|Δ\\| | mean \\|Δ\\| | Tolerance | Result |",
                "|---|---|---|---|---|---|---|"]
        for fw in self.frameworks:
            w, f = self.weights.get(fw), self.functional.get(fw)
            files = ", ".join(f"`{x}`" for x in w.files) if w else ""
            wtext = f"{files}: {w.brief()}" if w else "-"
            wmark = "✅" if w is None or w.passed else "❌"
            if f is None or not f.outputs:
                if f is None or not f.ran:
                    status = f"{WEIGHTS_ONLY}: outputs not compared" + (f" ({_cell(f.error)})" if f is not None and f.error else "")
                else:
                    status = f"❌ {f.status}" + (f" ({_cell(f.error)})" if f.error else "")
                rows.append(f"| {NAMES[fw]} | {wmark} {_cell(wtext)} | - | - | - | - | {status} |")
                continue
            for i, o in enumerate(f.outputs):
                cell = f"{wmark} {_cell(wtext)}" if i == 0 else ""
                mx = f"{o.max_abs:.1e}" if o.max_abs is not None else o.detail
                mean = f"{o.mean_abs:.1e}" if o.mean_abs is not None else "-"
                rows.append(f"| {NAMES[fw] if i == 0 else ''} | {cell} | `{o.name}` {tuple(o.shape)} | {mx} | {mean} | "
                            f"{o.tolerance:.0e} | {'✅ pass' if o.passed else '❌ fail'} |")
        used = {k: v for fw in self.frameworks for k, v in self.versions.get(fw, {}).items() if k not in ("python", "numpy")}
        ins = ", ".join(f"`{k}` {tuple(v['shape'])} {v['dtype']}" for k, v in (self.inputs.get("tensors") or {}).items())
        foot = [f"Verified by tensorferry against {self.reference}" + (f" with {', '.join(f'{k} {v}' for k, v in sorted(used.items()))}" if used else "") + "."]
        if ins:
            foot.append(f"Inputs: {ins} ({self.inputs.get('source', '')}).")
        return "\n".join(rows + [""] + foot) + "\n"

    def plot(self, path: str | Path) -> Path:
        """A PNG of max |Δ| per output and framework (log scale) with each tolerance drawn."""
        import matplotlib

        matplotlib.use("Agg")  # no display: files only
        import matplotlib.pyplot as plt

        fws = [fw for fw in self.frameworks if fw in self.functional and self.functional[fw].outputs]
        names = list(dict.fromkeys(o.name for fw in fws for o in self.functional[fw].outputs))
        fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(names) * max(1, len(fws)) + 2), 4.2), dpi=110)
        floor, width = 1e-12, 0.8 / max(1, len(fws))
        colors = {"pt": "#ee4c2c", "tf": "#ff8f00", "flax": "#4a6ee0"}
        for i, fw in enumerate(fws):
            by_name = {o.name: o for o in self.functional[fw].outputs}
            xs = [j + (i - (len(fws) - 1) / 2) * width for j, n in enumerate(names) if n in by_name]
            vals = [max(by_name[n].max_abs if by_name[n].max_abs is not None and not math.isinf(by_name[n].max_abs) else 1.0, floor)
                    for n in names if n in by_name]
            bars = ax.bar(xs, vals, width * 0.9, label=NAMES[fw], color=colors.get(fw), bottom=floor * 0.5)
            for bar, n in zip(bars, [n for n in names if n in by_name]):
                o = by_name[n]
                ax.annotate("exact" if o.max_abs == 0 else ("✓" if o.passed else "✗"), (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                            ha="center", va="bottom", fontsize=8)
        for tol in sorted({o.tolerance for fw in fws for o in self.functional[fw].outputs}):
            ax.axhline(tol, color="black", linestyle="--", linewidth=1)
            ax.annotate(f"tolerance {tol:.0e}", (ax.get_xlim()[0], tol), va="bottom", fontsize=8)
        ax.set_yscale("log")
        if names:
            ax.set_xticks(range(len(names)), names)
        else:
            ax.set_xticks([])
            ax.set_ylim(floor, 1.0)
            ax.text(0.5, 0.5, "no outputs to compare", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel("model output")
        ax.set_ylabel("max |Δ| vs PyTorch reference (log)")
        missing = [f"{fw}: {'not compared' if not f.ran else f.status}" for fw, f in self.functional.items() if not f.outputs]
        title = f"tensorferry verification: {'FAILED' if not self.passed else 'passed' if self.complete else 'weights only'}"
        ax.set_title(title + (f"\n(no outputs from {', '.join(missing)})" if missing else ""), fontsize=11)
        if fws:
            ax.legend(title="framework", fontsize=8)
        fig.tight_layout()
        path = Path(path)
        fig.savefig(path)
        plt.close(fig)
        return path

    def write(self, folder: str | Path) -> list[str]:
        """Write verification.json, verification.md and (with matplotlib) verification.png into FOLDER."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        as_json, as_markdown, plot = VERIFICATION
        self.files = [str(folder / as_json), str(folder / as_markdown)]
        if any(f.ran for f in self.functional.values()):  # no outputs compared: nothing to plot
            try:
                self.files.append(str(self.plot(folder / plot)))
            except ImportError:
                pass  # matplotlib is in the `all` extra; JSON and Markdown need nothing
        (folder / as_markdown).write_text(self.markdown())
        (folder / as_json).write_text(json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n")
        return self.files


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")[:300]
