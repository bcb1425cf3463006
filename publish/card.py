"""The shared model card: one README for every framework variant, built with ``huggingface_hub.ModelCard``.

What tensorferry writes sits between two HTML comments, so a re-run replaces its own section and
leaves the rest of an existing card alone; the metadata is merged, never overwritten (tags are
added, a key the card already has keeps its value).

>>> facts = CardFacts(repo_id="alice/tiny", frameworks={"pt": ["model.safetensors"], "tf": ["tf_model.h5"]},
...                   sizes={"model.safetensors": 1000, "tf_model.h5": 3000})
>>> card = build_card(facts, existing="---\\nlicense: mit\\n---\\n# Tiny\\n\\nMy own words.\\n")
>>> card.data.license, card.data.tags, "My own words." in card.text
('mit', ['pytorch', 'safetensors', 'tensorflow', 'tensorferry'], True)
>>> build_card(facts, existing=str(card)).text.count(BEGIN)      # a re-run replaces its own section
1
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from tensorferry.converters.constants import NAMES
from tensorferry.converters.verify.report import Verification

from .variants import VARIANTS, card_lines

BEGIN = "<!-- tensorferry:begin (this section is rewritten by tensorferry publish) -->"
END = "<!-- tensorferry:end -->"
# Metadata carried over from the source's card when the target's card lacks it.
CARRIED = ("license", "license_name", "license_link", "pipeline_tag", "datasets", "language", "library_name")
TAGS = {"pt": ["pytorch", "safetensors"], "tf": ["tensorflow"], "flax": ["jax"]}


@dataclass
class CardFacts:
    """Everything the card states: what was published, from what, how it was checked."""

    repo_id: str
    frameworks: dict[str, list[str]]  # framework → files in the repo
    sizes: dict[str, int] = field(default_factory=dict)
    source_framework: str | None = None
    converted: list[str] = field(default_factory=list)  # frameworks written by tensorferry (the rest came as given)
    present: list[str] = field(default_factory=list)  # frameworks the repo already held, left as they were
    architecture: str | None = None  # transformers class name (config.json architectures[0])
    library_name: str | None = None
    base_model: str | None = None
    verification: Verification | None = None
    provenance: dict[str, str] = field(default_factory=dict)
    checkpoint: list[str] = field(default_factory=list)  # the training checkpoint's files (checkpoint/…), if pushed
    variants: dict[str, list[str]] = field(default_factory=dict)  # Keras 3 / NNX subfolders (``variants``) → files
    variant_models: dict[str, object] = field(default_factory=dict)  # the model factory each was written for
    variant_checks: dict[str, str] = field(default_factory=dict)  # each one's verification summary


def build_card(facts: CardFacts, existing: str | None = None, source: str | None = None) -> Any:
    """The card for FACTS: EXISTING (the target repo's README) with its metadata merged and tensorferry's
    section replaced, else SOURCE's prose and metadata, else a new card."""
    from huggingface_hub import ModelCard

    base = existing or source
    logging.getLogger("huggingface_hub.repocard").setLevel(logging.ERROR)  # a card without metadata is fine
    card = ModelCard(base) if base else ModelCard(f"---\n{{}}\n---\n# {facts.repo_id.split('/')[-1]}\n")
    data = card.data
    if source and existing:  # the target keeps its own values; the source fills what it lacks
        given = ModelCard(source).data
        for key in CARRIED:
            if data.get(key) in (None, [], "") and given.get(key) not in (None, [], ""):
                data[key] = given.get(key)
    if not data.get("library_name") and facts.library_name:
        data["library_name"] = facts.library_name
    if facts.base_model and not data.get("base_model") and facts.base_model != facts.repo_id:
        data["base_model"] = facts.base_model
    tags = list(data.get("tags") or [])
    for fw in facts.frameworks:
        tags += TAGS[fw]
    for name in facts.variants:
        tags += list(VARIANTS[name].tags)
    data["tags"] = list(dict.fromkeys([*tags, "tensorferry"]))
    card.text = _replace_section(card.text, section(facts))
    return card


def _replace_section(text: str, new: str) -> str:
    if BEGIN in text and END in text.split(BEGIN, 1)[1]:
        head, rest = text.split(BEGIN, 1)
        return head + new + rest.split(END, 1)[1]
    return text.rstrip("\n") + "\n\n" + new + "\n"


def section(facts: CardFacts) -> str:
    """tensorferry's part of the card: files, loading snippets, verification, provenance."""
    held = [NAMES[fw] for fw in facts.frameworks]
    lines = [BEGIN, "", f"## Weights for {', '.join(held[:-1]) + ' and ' if len(held) > 1 else ''}{held[-1]}", ""]
    given = [fw for fw in facts.frameworks if fw not in facts.converted and fw not in facts.present]
    checked = [fw for fw in facts.frameworks if fw not in facts.present]  # what this run wrote or read as its source
    lines.append("This repository holds the same weights for " + ", ".join(NAMES[fw] for fw in checked)
                 + ", converted with [tensorferry](https://pypi.org/project/tensorferry/)"
                 + (f" from the {NAMES[given[0]]} weights" if given else
                    f" from a {NAMES[facts.source_framework]} checkpoint" if facts.source_framework else "") + ".")
    if facts.present:
        lines.append("The " + ", ".join(NAMES[fw] for fw in facts.present) + " weights were in the repository before "
                     "and were left as they were: this run did not check them.")
    lines += ["", "| Framework | Files | Size |", "|---|---|---|"]
    for fw, files in facts.frameworks.items():
        size = sum(facts.sizes.get(f, 0) for f in files)
        origin = "" if fw in facts.converted else " (already in the repo)" if fw in facts.present else " (source)"
        lines.append(f"| {NAMES[fw]}{origin} | {', '.join(f'`{f}`' for f in files)} | {_human(size)} |")
    rows, snippets = card_lines(facts.repo_id, facts.variants, facts.sizes, facts.variant_models, _human)
    lines += rows
    lines += ["", "### Loading", ""]
    for fw in facts.frameworks:
        lines += [f"**{NAMES[fw]}**", "", "```python", *snippet(fw, facts), "```", ""]
    lines += snippets
    for name, summary in facts.variant_checks.items():
        lines += [f"{VARIANTS[name].label} (`{VARIANTS[name].folder}/`): loaded by its own framework into the model it was "
                  f"written for, every variable compared with the source: {summary}.", ""]
    lines += ["### Verification", ""]
    v = facts.verification
    if v is None:
        lines += ["Not verified: this publish ran without verification.", ""]
    else:
        lines += [_verdict(v), "", v.markdown().rstrip("\n"), ""]
        if any(f.ran for f in v.functional.values()):
            lines += ["![max |Δ| per output and framework](verification.png)", ""]
        lines += ["`verification.json` has every tensor's result (schema `tensorferry.verification/2`).", ""]
    if facts.checkpoint:
        lines += checkpoint_section(facts)
    if facts.provenance:
        lines += ["### Provenance", ""]
        lines += [f"- {key}: {value}" for key, value in facts.provenance.items()]
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


def checkpoint_section(facts: CardFacts) -> list[str]:
    """The card's lines on the training checkpoint pushed with the weights.

    >>> checkpoint_section(CardFacts("a/b", {}, checkpoint=["checkpoint/trainer_state.json"]))[0]
    '### Training checkpoint'
    """
    return ["### Training checkpoint", "",
            "`checkpoint/` holds what resuming training needs, written with these weights during training: the "
            "optimizer state and the step/epoch counters (" + ", ".join(f"`{f}`" for f in facts.checkpoint)
            + "; safetensors, msgpack and JSON, no pickle). Resume into a fresh model and optimizer with:", "",
            "```python", "from tensorferry.publish import load_checkpoint",
            f'resumed = load_checkpoint("{facts.repo_id}", model, optimizer)  # -> resumed.step, resumed.epoch', "```", ""]


def _verdict(v: Verification) -> str:
    if not v.passed:
        return "**Verification FAILED**: see the table and `verification.json`."
    checked = [NAMES[fw] for fw in v.frameworks if fw in v.functional and v.functional[fw].ran]
    only = [NAMES[fw] for fw in v.weights_only()]
    text = "Every weight was read back from the files in this repository and compared with the source, tensor by tensor."
    if checked:
        text += f" Outputs were compared in {', '.join(checked)}."
    if only:
        text += f" **Weights only** for {', '.join(only)}: outputs were not compared there."
    return text


def snippet(framework: str, facts: CardFacts) -> list[str]:
    """How to load FRAMEWORK's variant: transformers classes for transformers checkpoints, else tensorferry.

    >>> snippet("tf", CardFacts("a/b", {}, architecture="BertModel"))
    ['from transformers import TFBertModel  # transformers 4.x', 'model = TFBertModel.from_pretrained("a/b")']
    """
    repo = facts.repo_id
    if facts.architecture:
        cls = {"pt": "", "tf": "TF", "flax": "Flax"}[framework] + facts.architecture
        note = "" if framework == "pt" else "  # transformers 4.x"
        return [f"from transformers import {cls}{note}", f'model = {cls}.from_pretrained("{repo}")']
    kind = {"pt": "a state dict of torch tensors", "tf": "Keras weights by name", "flax": "a params tree"}[framework]
    return ["import tensorferry.publish", f'weights = tensorferry.publish.load("{repo}", "{framework}")  # {kind}']


def _human(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"
