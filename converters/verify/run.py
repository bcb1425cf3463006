"""Verify converted checkpoints at two levels: the weights, and what the models compute.

* **weights** (always, no framework needed): ``weights.verify_weights`` per variant.
* **functional**: each variant loaded into a model of its own framework, in its own worker
  process, and run on the same inputs; outputs compared with the PyTorch reference's
  (``functional.verify_functional``).

>>> import tempfile; from tensorferry.converters import convert
>>> out = tempfile.mkdtemp(); _ = convert("fixtures/checkpoints/cnn", out, to=["pt", "tf", "flax"])
>>> v = verify_dir(out, reference="fixtures/checkpoints/cnn", functional=False, report_dir=False)
>>> v.passed, sorted(v.weights)
(True, ['flax', 'pt', 'tf'])
"""
from __future__ import annotations

import contextlib
import fnmatch
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from .. import dtypes
from ..checkpoint import Source, open_source, read_config
from ..constants import CONFIG, FILES, FRAMEWORKS, STANDARD, parse_frameworks
from ..errors import InputError
from ..pipeline import convert
from ..constants import DEFAULT_TIMEOUT
from .functional import verify_functional
from .models import SOURCES, FactorySource, detect
from .report import NOT_RUN, FunctionalCheck, Verification, WeightsCheck, tolerance_for
from .weights import verify_weights


def choose_models(config: dict | None, frameworks: Sequence[str], models: dict[str, str] | None = None,
                  transformers_python: str | None = None) -> tuple[object | None, str]:
    """The model source for the run (explicit ``--model`` first, then detection) and why, if none.

    >>> choose_models({"model_type": "tensorferry-tiny-cnn"}, ["tf"])[0].factories["tf"]
    'tensorferry.fixtures.cnn:keras_model'
    """
    if models:
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


def verify_dir(path: str | Path, reference: str | Path | Source | None = None, frameworks: Sequence[str] | str | None = None, *,
               atol: float | None = None, models: dict[str, str] | None = None, inputs: str | Path | None = None,
               seed: int = 0, dtype: str | None = None, functional: bool | str = True, transformers_python: str | None = None,
               report_dir: str | Path | None | bool = None, timeout: float = DEFAULT_TIMEOUT, repo: dict | None = None,
               kinds: dict[str, str] | None = None, layout_map: str | Path | dict | None = None) -> Verification:
    """Verify the variants in PATH against REFERENCE (default: PATH's own ``model.safetensors``).

    REFERENCE may be an opened ``Source`` (as the conversion selected it: ``--key``, ``--drop``);
    ``kinds`` and ``layout_map`` are what the conversion was told about the tensors.

    Writes ``verification.json``, ``verification.md`` and ``verification.png`` to ``report_dir``
    (default PATH; ``False`` writes nothing).  ``functional="auto"`` compares outputs only in the
    frameworks whose worker can run here (the others are reported as not run, with the reason).

    >>> import tempfile; from tensorferry.converters import convert
    >>> out = tempfile.mkdtemp(); _ = convert("fixtures/checkpoints/cnn", out, to=["tf"])
    >>> v = verify_dir(out, reference="fixtures/checkpoints/cnn", frameworks=["tf"], report_dir=False)
    >>> v.passed, v.functional["tf"].outputs[0].max_abs < 5e-5
    (True, True)
    """
    started = time.perf_counter()
    path = Path(path)
    if not path.is_dir():
        raise InputError(path, "not a folder (give a converted checkpoint folder or a Hub repo id)")
    own = _own_format_models(path, models)  # Keras 3 / NNX variants, checked by their own loaders
    present = [fw for fw in FRAMEWORKS if _has(path, fw) or fw in own]
    fws = parse_frameworks(frameworks, "--frameworks") if frameworks else present
    absent = [fw for fw in fws if fw not in present]
    if absent:
        raise InputError(path, f"holds no {', '.join(absent)} weights (found: {', '.join(present) or 'none'})")
    ref_source = reference if isinstance(reference, Source) else open_source(reference) if reference is not None else _own_reference(path)
    given = ref_source.files[0] if isinstance(reference, Source) else reference
    config = ref_source.config or _config(path)
    result = Verification(str(path), str(given) if given is not None else f"{path}/ (its PyTorch weights)", list(fws), repo=repo)
    for fw in fws:
        if fw in own:
            result.weights[fw] = _own_format_check(path, ref_source, fw, own[fw])
            continue
        variant = open_source(path, fw)
        if reference is None and fw == "pt":
            result.weights[fw] = WeightsCheck("pt", [f.name for f in variant.files], reference=True)
            continue
        result.weights[fw] = verify_weights(variant, ref_source, dtype, kinds=kinds, layout_map=layout_map)
    if ref_source.framework != "pt" and "pt" in fws:
        from ..pipeline import plan_for

        result.unrecovered = plan_for(ref_source, ["pt"], kinds=kinds, layout_map=layout_map).unrecovered
    tolerances = {fw: tolerance_for(_variant_dtype(result.weights.get(fw), ref_source), atol) for fw in fws}
    result.tolerances = {fw: {"atol": t[0], "rtol": t[1], "dtype": t[2]} for fw, t in tolerances.items()}
    # a Keras 3 / NNX variant: its check above is its own loader's; outputs would need a runner of the user's own
    own_note = {fw: "a Keras 3 / NNX variant: loaded by its own framework, every variable compared; outputs not compared"
                for fw in own if fw in fws}
    compared = [fw for fw in fws if fw not in own_note]
    models = {k: v for k, v in (models or {}).items() if k not in own} or None
    model, why = choose_models(config, compared, models, transformers_python) if functional and compared \
        else (None, "not requested (weights only)" if not functional else "")
    options = {"transformers_python": transformers_python}
    skipped: dict[str, str] = {}
    if model is not None and functional == "auto":
        skipped = {fw: why for fw in dict.fromkeys(["pt", *compared]) if (why := model.unavailable(fw, options))}
        if "pt" in skipped:  # no reference outputs: nothing can be compared
            model, why = None, f"the PyTorch reference cannot run: {skipped['pt']}"
    skipped.update(own_note)
    if model is None:
        result.functional = {fw: FunctionalCheck(fw, "-", status=NOT_RUN, error=skipped.get(fw, why)) for fw in fws}
    else:
        run = [fw for fw in fws if fw not in skipped]
        ran, extra = {}, {"versions": {}, "inputs": {}}
        if run:
            with _reference_dir(ref_source) as ref_dir:
                ran, extra = verify_functional(path, ref_dir, run, model, config, tolerances, inputs, seed, options, timeout)
        result.functional = {fw: ran.get(fw) or FunctionalCheck(fw, model.describe(fw), status=NOT_RUN, error=skipped[fw])
                             for fw in fws}
        result.versions.update(extra["versions"])
        result.inputs = {"source": str(inputs) if inputs else f"seeded default (seed {seed})", "tensors": extra["inputs"]}
    result.seconds = round(time.perf_counter() - started, 2)
    if report_dir is not False:
        result.write(Path(report_dir) if report_dir else path)
    return result


def _own_format_models(path: Path, models: dict[str, str] | None) -> dict[str, object]:
    """{framework: model} for ``--model`` factories that build a Keras 3 model (``tf``, with ``model.weights.h5``
    or ``model.weights.json`` in PATH) or an NNX module (``flax``, with ``nnx/`` in PATH)."""
    from ..constants import KERAS3_WEIGHTS, NNX_DIR
    from ..guided import keras3, load_model, nnx

    out = {}
    for fw, files in (("tf", [KERAS3_WEIGHTS, "model.weights.json"]), ("flax", [NNX_DIR])):
        spec = (models or {}).get(fw)
        if isinstance(spec, str) and ":" in spec and any((path / f).exists() for f in files) and not _has(path, fw):
            model = load_model(fw, spec)
            if keras3.is_keras3(model) or nnx.is_nnx(model):
                out[fw] = model
    return out


def _own_format_check(path: Path, reference: Source, fw: str, model: object) -> WeightsCheck:
    """A Keras 3 / NNX variant planned from the reference for MODEL, loaded by its framework, compared variable by variable."""
    from ..pipeline import plan_for
    from .guided import verify_guided

    plan = plan_for(reference, [fw], models={fw: model})
    return verify_guided(path, reference, plan)[fw]


def _has(path: Path, fw: str) -> bool:
    return any((path / name).exists() for f, files in STANDARD if f == fw for name in files.names)


def _config(path: Path) -> dict | None:
    try:
        return read_config(path / CONFIG, path)  # a downloaded repo's config is untrusted input
    except InputError:
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


@contextlib.contextmanager
def _reference_dir(source: Source) -> Iterator[Path]:
    """A folder the reference model loads from: the source's own folder when it holds safetensors under
    the standard names, else a canonical copy written for the run (a pickle, a lone file, TF or Flax,
    or a source some tensors were dropped from)."""
    standard = all(any(fnmatch.fnmatch(f.name, p) for p in FILES["pt"].patterns) for f in source.files)
    if source.framework == "pt" and standard and not source.dropped:
        yield source.files[0].parent
        return
    tmp = Path(tempfile.mkdtemp(prefix="tensorferry-reference-"))
    try:
        convert(source, tmp, to=["pt"])
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
