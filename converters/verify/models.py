"""Where verification gets its models: a small registry of model sources, as data.

A model source says which Python runs a framework's worker and, inside that worker, turns a
checkpoint folder into a *runner*: ``runner(inputs) -> {output name: float32 array}`` with
inputs and outputs in PyTorch layout.  Sources are plain dataclasses so the parent can send
them to a worker as JSON; ``load`` is only ever called inside a worker, so this module imports
no framework at import time (it also runs in the transformers environment).

* ``factory``: the user's classes, ``module:factory`` per framework; the module may also give
  ``run_<fw>`` (or ``run_torch``/``run_keras``/``run_flax``) and ``example_inputs(seed)``.
* ``transformers``: transformers 4.57.6 classes from ``config.json`` ``architectures``
  (``TF``/``Flax`` prefixes), run with the transformers environment's Python.

Other packages offer factories for their own models through the entry-point group
``tensorferry.model_factories``: a function ``(config) -> {framework: "module:factory"} | None``.
The fixture twins are found that way (see ``pyproject.toml``), so this package never imports them.

>>> src = FactorySource({"pt": "tensorferry.fixtures.cnn:torch_model"})
>>> from_json(src.to_json()) == src
True
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import logging
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

Runner = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]
# The names the fixture twins (and many users) already use for framework-specific runners.
RUN_ALIASES = {"pt": ("run_pt", "run_torch"), "tf": ("run_tf", "run_keras"), "flax": ("run_flax",)}
ENTRY_POINTS = "tensorferry.model_factories"
# The modules a factory worker imports per framework, all in this very Python.
LIBRARIES = {"pt": ("torch",), "tf": ("tensorflow", "tf_keras"), "flax": ("jax", "flax")}

SOURCES: dict[str, type] = {}
DETECTORS: list[Callable[[dict, dict], Any]] = []  # (config, options) -> ModelSource | None, first hit wins


def register(cls: type) -> type:
    """Class decorator: make a model source known to ``from_json`` under ``cls.kind``."""
    SOURCES[cls.kind] = cls
    return cls


def from_json(data: dict) -> Any:
    """Rebuild a model source from ``source.to_json()`` (how a worker receives it)."""
    data = dict(data)
    return SOURCES[data.pop("kind")](**data)


def detect(config: dict | None, options: dict | None = None) -> Any:
    """The first model source that recognises ``config`` (fixture model_type, then transformers)."""
    for detector in DETECTORS:
        found = detector(config or {}, options or {})
        if found is not None:
            return found
    return None


def versions(framework: str, extra: tuple[str, ...] = ()) -> dict[str, str]:
    """Versions of the packages a worker used: what the report records per framework."""
    from importlib.metadata import PackageNotFoundError, version

    names = {"pt": ("torch",), "tf": ("tensorflow", "tf-keras"), "flax": ("jax", "jaxlib", "flax")}[framework]
    out = {"python": sys.version.split()[0]}
    for name in ("numpy", *names, *extra):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def default_inputs(config: dict | None, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded inputs chosen from the config: pixels, audio, else token ids with an attention mask.

    >>> sorted(default_inputs({"vocab_size": 100}))
    ['attention_mask', 'input_ids']
    >>> default_inputs({"image_size": 16, "num_channels": 3})["pixel_values"].shape
    (2, 3, 16, 16)
    """
    c, rng = config or {}, np.random.default_rng(seed)
    if "image_size" in c and "vocab_size" not in c:
        size = c["image_size"] if isinstance(c["image_size"], int) else c["image_size"][0]
        return {"pixel_values": rng.standard_normal((2, c.get("num_channels", 3), size, size)).astype(np.float32)}
    if "conv_kernel" in c or "feat_extract_norm" in c or c.get("model_type") in ("wav2vec2", "hubert", "wavlm"):
        return {"input_values": rng.standard_normal((2, 3200)).astype(np.float32)}
    vocab = int(c.get("vocab_size") or 1000)
    length = min(12, int(c.get("max_position_embeddings") or 12))
    # Ids from 5 up skip the usual special tokens (pad, cls, sep, mask) of small vocabularies.
    ids = rng.integers(min(5, vocab - 1), vocab, (2, length), dtype=np.int64)
    mask = np.ones_like(ids)
    mask[1, -2:] = 0  # the second sequence is padded: masking is exercised, not just ones
    out = {"input_ids": ids, "attention_mask": mask}
    if c.get("is_encoder_decoder"):
        out["decoder_input_ids"] = ids[:, : max(2, length // 2)].copy()
    return out


def outputs_of(result: Any) -> dict[str, np.ndarray]:
    """Named float32 arrays from whatever a model returned (array, tuple, dict, ModelOutput)."""
    if isinstance(result, dict) or hasattr(result, "keys"):
        items = [(k, result[k]) for k in result.keys()]
    elif isinstance(result, (tuple, list)):
        items = [(f"output_{i}", v) for i, v in enumerate(result)]
    else:
        items = [("output", result)]
    out = {}
    for name, value in items:
        if value is None or isinstance(value, (tuple, list, dict)):
            continue  # hidden-state tuples, caches: the main outputs already cover them
        if hasattr(value, "detach"):
            value = value.detach().cpu().float().numpy()
        arr = np.asarray(value)
        if arr.dtype.kind in "fc" or arr.dtype.name == "bfloat16":
            out[name] = arr.astype(np.float32)
    return out


def _accepted(fn: Callable, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    params = inspect.signature(fn).parameters
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return inputs
    return {k: v for k, v in inputs.items() if k in params}


def _import(spec: str) -> tuple[Any, Any]:
    module_name, _, attr = spec.partition(":")
    module = importlib.import_module(module_name)
    return module, getattr(module, attr or "model")


@register
@dataclass
class FactorySource:
    """The user's own classes: ``{"pt": "pkg.mod:torch_model", "tf": ..., "flax": ...}``.

    A factory (called with the config dict when it asks for it, as ``convert --model``
    does: see ``guided.call_factory``) returns a torch module, a built Keras model, or ``(flax module, variables template)``;
    weights are then loaded strictly by name.
    """

    factories: dict[str, str]
    kind: ClassVar[str] = "factory"
    needs_view: ClassVar[bool] = False  # tensorferry's own loaders pick the variant by framework

    def to_json(self) -> dict:
        return {"kind": self.kind, **asdict(self)}

    def describe(self, framework: str) -> str:
        return self.factories.get(framework, "-")

    def python(self, framework: str, options: dict) -> str:
        return sys.executable

    def unavailable(self, framework: str, options: dict) -> str | None:
        """Why FRAMEWORK's worker cannot run here (its library is not installed), or None."""
        missing = [lib for lib in LIBRARIES[framework] if importlib.util.find_spec(lib) is None]
        return f"{', '.join(missing)} not installed (pip install 'tensorferry[all]')" if missing else None

    def example_inputs(self, config: dict, seed: int) -> dict[str, np.ndarray]:
        module, _ = _import(self.factories["pt"])
        return dict(module.example_inputs(seed)) if hasattr(module, "example_inputs") else default_inputs(config, seed)

    def versions(self, framework: str) -> dict[str, str]:
        return versions(framework)

    def load(self, framework: str, path: str, config: dict) -> tuple[Runner, dict]:
        """Build the model and load the checkpoint at PATH (a folder) strictly; (runner, load report)."""
        from ..guided import call_factory

        module, factory = _import(self.factories[framework])
        run = next((getattr(module, n) for n in RUN_ALIASES[framework] if hasattr(module, n)), None)
        if framework == "pt":
            from ..frameworks.torch import load_state

            model = call_factory(factory, config)
            report = load_state(model, path)
            return (lambda x: outputs_of(run(model, x))) if run else _torch_runner(model), report
        if framework == "tf":
            from ..frameworks.keras import load_weights

            model = call_factory(factory, config)
            report = load_weights(model, path, strict=True)
            return (lambda x: outputs_of(run(model, x))) if run else _keras_runner(model), report
        from ..frameworks.flax import load_variables

        built = call_factory(factory, config)
        if not (isinstance(built, tuple) and len(built) == 2):
            from ..errors import InputError

            raise InputError(self.factories[framework], "a Flax factory for verify returns (module, variables template): "
                             "the module is needed to run it")
        flax_module, template = built
        variables, report = load_variables(template, path)
        if run:
            return (lambda x: outputs_of(run(flax_module, variables, x))), report
        return (lambda x: outputs_of(flax_module.apply(variables, **x))), report


def _torch_runner(model) -> Runner:
    import torch

    def run(inputs):
        with torch.no_grad():
            return outputs_of(model(**{k: torch.from_numpy(v) for k, v in _accepted(model.forward, inputs).items()}))
    return run


def _keras_runner(model) -> Runner:
    def run(inputs):
        inputs = _accepted(model.call, inputs)
        return outputs_of(model(next(iter(inputs.values())) if len(inputs) == 1 else inputs, training=False))
    return run


@register
@dataclass
class TransformersSource:
    """transformers classes named by ``architectures[0]``: ``BertModel``, ``TFBertModel``, ``FlaxBertModel``."""

    architecture: str
    python_path: str = ""
    kind: ClassVar[str] = "transformers"
    needs_view: ClassVar[bool] = True  # from_pretrained picks a file by name: give it a folder holding only its own
    PREFIX: ClassVar[dict[str, str]] = {"pt": "", "tf": "TF", "flax": "Flax"}

    def to_json(self) -> dict:
        return {"kind": self.kind, **asdict(self)}

    def describe(self, framework: str) -> str:
        return f"transformers.{self.PREFIX[framework]}{self.architecture}"

    def python(self, framework: str, options: dict) -> str:
        return self.python_path or options.get("transformers_python") or _transformers_python()

    def unavailable(self, framework: str, options: dict) -> str | None:
        """Why the transformers worker cannot run (no such Python), or None."""
        python = self.python(framework, options)
        if not Path(python).exists():
            return (f"no Python with transformers 4.57.6 at {python} (run `python -m tensorferry.converters.maps.mapgen "
                    "setup` or pass --transformers-python)")
        return None

    def example_inputs(self, config: dict, seed: int) -> dict[str, np.ndarray]:
        return default_inputs(config, seed)

    def versions(self, framework: str) -> dict[str, str]:
        return versions(framework, ("transformers",))

    def load(self, framework: str, path: str, config: dict) -> tuple[Runner, dict]:
        import transformers

        name = self.PREFIX[framework] + self.architecture
        cls = getattr(transformers, name, None)
        if cls is None:
            raise ValueError(f"transformers {transformers.__version__} has no class {name}")
        if framework == "flax":
            messages = _capture_warnings(transformers)
            model = cls.from_pretrained(path)
            new = [m for m in messages if "newly initialized" in m or "were not initialized" in m]
            report = {"warnings": [m[:500] for m in messages]}
            if new:
                raise ValueError(f"{name} initialised weights the checkpoint lacks: {new[0][:800]}")
            return (lambda x: outputs_of(model(**_accepted(model.__call__, x)))), report
        model, info = cls.from_pretrained(path, output_loading_info=True)
        report = {k: [str(v) for v in info.get(k, [])] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
        if report["missing_keys"] or report["mismatched_keys"]:
            raise ValueError(f"{name} did not find every weight: missing {report['missing_keys'][:8]}, mismatched {report['mismatched_keys'][:4]}")
        if framework == "pt":
            model.eval()
            return _torch_runner(model), report
        return (lambda x: outputs_of(model(_accepted(model.call, x), training=False))), report


def _capture_warnings(transformers) -> list[str]:
    messages: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    transformers.logging.get_logger("transformers").addHandler(Capture(logging.WARNING))
    return messages


def _transformers_python() -> str:
    from ..envs import env_python  # the environment `python -m tensorferry.converters.maps.mapgen setup` creates

    return str(env_python())


def _entry_point_detector(config: dict, options: dict) -> FactorySource | None:
    for ep in entry_points(group=ENTRY_POINTS):
        factories = ep.load()(config)
        if factories:
            return FactorySource(dict(factories))
    return None


def _transformers_detector(config: dict, options: dict) -> TransformersSource | None:
    from ..maps.transformers import available  # parent side only: workers never detect

    arch = (config.get("architectures") or [None])[0]
    if not isinstance(arch, str) or config.get("model_type") not in available():
        return None  # not a transformers model type with TF or Flax classes
    return TransformersSource(arch, options.get("transformers_python") or "")


DETECTORS.extend([_entry_point_detector, _transformers_detector])
