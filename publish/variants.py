"""Keras 3 and Flax NNX variants of a published repo: written for the user's own model, kept in subfolders.

The standard files (``model.safetensors``, ``tf_model.h5``, ``flax_model.msgpack``) stay at the root,
where transformers 4.x and ``tensorferry.publish.load`` look for them; a variant that only a
particular model class can load goes in a subfolder of its own, as sentence-transformers keeps
``onnx/`` and ``openvino/`` beside the PyTorch weights:

* ``keras3/model.weights.h5``: the Keras 3 model's own ``load_weights`` file;
* ``nnx/``: an Orbax checkpoint that ``StandardCheckpointer().restore(path, nnx.state(model))`` reads.

Each is verified before anything is pushed: loaded by its framework into the model, every
variable compared bit for bit with the source (``converters.verify.guided``).

>>> sorted(VARIANTS), VARIANTS["keras3"].folder
(['keras3', 'nnx'], 'keras3')
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tensorferry.converters.checkpoint import Source
from tensorferry.converters.errors import InputError
from tensorferry.converters.pipeline import convert


@dataclass(frozen=True)
class Variant:
    framework: str  # the converter target it is written as
    folder: str  # its folder in the repo
    label: str  # for the card
    tags: tuple[str, ...]
    snippet: tuple[str, ...]  # how to load it; {repo}, {folder} and {model} are filled in


VARIANTS = {
    "keras3": Variant("tf", "keras3", "Keras 3", ("keras",), (
        "from huggingface_hub import hf_hub_download",
        "model = {model}  # the Keras 3 model these weights were written for, built",
        'model.load_weights(hf_hub_download("{repo}", "{folder}/model.weights.h5"))')),
    "nnx": Variant("flax", "nnx", "Flax NNX (Orbax)", ("jax", "flax", "orbax"), (
        "import orbax.checkpoint as ocp",
        "from flax import nnx",
        "from huggingface_hub import snapshot_download",
        'path = snapshot_download("{repo}", allow_patterns="{folder}/*")',
        "model = {model}  # the NNX module this checkpoint was written for",
        'nnx.update(model, ocp.StandardCheckpointer().restore(f"{{path}}/{folder}", nnx.state(model)))')),
}


def parse(items: dict[str, object] | list[str] | None) -> dict[str, object]:
    """``["keras3=pkg.mod:factory"]`` or ``{"nnx": module}`` → {variant: model or spec}, names checked.

    >>> parse(["nnx=pkg.twins:nnx_model"])
    {'nnx': 'pkg.twins:nnx_model'}
    """
    pairs = items.items() if isinstance(items, dict) else [tuple(i.partition("=")[::2]) for i in items or []]
    out = {}
    for name, model in pairs:
        if name not in VARIANTS or model in ("", None):
            raise InputError("--variant", f"expected NAME=MODULE:FACTORY with NAME one of {', '.join(VARIANTS)}, got {name!r}")
        out[name] = model
    return out


def write(source: Source, staging: Path, variants: dict[str, object]) -> tuple[list[tuple[str, Path, int, object]], dict, dict]:
    """Convert SOURCE for each variant's model into STAGING/.variants; (repo path, local path, size, digest) of
    every file, the files of each variant, and each variant's verification (``WeightsCheck``)."""
    from tensorferry.converters.verify.guided import verify_guided

    files, by_variant, checks = [], {}, {}
    for name, model in variants.items():
        v = VARIANTS[name]
        work = staging / ".variants" / name
        result = convert(source, work, to=[v.framework], models={v.framework: model}, digests=True)
        layout = result.plan.keras3 if v.framework == "tf" else result.plan.nnx
        if layout is None:
            kind = "Keras 3 model" if v.framework == "tf" else "NNX module"
            raise InputError(f"--variant {name}", f"the model is not a {kind}")
        written = work / result.outputs[v.framework].files[0].rstrip("/")
        by_variant[name] = []
        for f in ([written] if written.is_file() else sorted(p for p in written.rglob("*") if p.is_file())):
            rel = f.name if written.is_file() else f.relative_to(written).as_posix()
            files.append((f"{v.folder}/{rel}", f, f.stat().st_size, result.outputs[v.framework].digests.get(f.name)))
            by_variant[name].append(f"{v.folder}/{rel}")
        checks[name] = verify_guided(work, source, result.plan)[v.framework]
    return files, by_variant, checks


def card_lines(repo: str, by_variant: dict[str, list[str]], sizes: dict[str, int], models: dict[str, object],
               human=lambda n: f"{n} B") -> tuple[list[str], list[str]]:
    """(table rows, loading snippets) for the card; HUMAN formats a size."""
    rows, snippets = [], []
    for name, paths in by_variant.items():
        v = VARIANTS[name]
        shown = f"`{paths[0]}`" if len(paths) == 1 else f"`{v.folder}/` ({len(paths)} files)"
        size = sum(sizes.get(p, 0) for p in paths)
        rows.append(f"| {v.label} | {shown} | {human(size)} |")
        spec = models.get(name) if isinstance(models.get(name), str) else None
        module, _, factory = spec.partition(":") if spec else ("", "", "")
        text = ([f"from {module} import {factory}"] if spec else []) + [
            line.format(repo=repo, folder=v.folder, model=f"{factory}()" if spec else "...") for line in v.snippet]
        snippets += [f"**{v.label}**", "", "```python", *text, "```", ""]
    return rows, snippets
