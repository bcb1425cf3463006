"""Layout maps of transformers architectures, read from ``maps/transformers/{model_type}.json``.

The maps are generated from transformers 4.57.6 itself (``python -m tensorferry.converters.maps.mapgen
generate``); this module only reads them, with no transformers, TensorFlow or JAX import.  One
:class:`ArchitectureMap` answers, for one architecture, where every PyTorch tensor goes in a
``tf_model.h5`` (Keras weight name) or ``flax_model.msgpack`` (``/``-joined tree path) and which op
moves it there, in both directions, including base/head cross-loading (``bert.`` prefix or not).

>>> m = find_map({"model_type": "bert", "architectures": ["BertModel"]})
>>> out = m.from_canonical("tf", {"encoder.layer.11.attention.self.query.weight": ((384, 384), "F32")})
>>> name, op = out["encoder.layer.11.attention.self.query.weight"]
>>> name, str(op)
('tf_bert_model/bert/encoder/layer_._11/attention/self/query/kernel', 'T')
>>> back = m.to_canonical("tf", {name: ((384, 384), "F32")})
>>> back[name][0]
'encoder.layer.11.attention.self.query.weight'
"""
from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import LayoutError
from ..ops import Op, parse
from .optional import enabled_text, missing_tensors, template_regex

MAPS_DIR = Path(__file__).resolve().parent / "data" / "transformers"
FRAMEWORKS = ("tf", "flax")
Spec = tuple[tuple[int, ...], str]
# from_canonical's value: one (native name, op), several when the tensor feeds copies, or None.
Target = tuple[str, Op] | list[tuple[str, Op]] | None
# Pre-2020 PyTorch checkpoints name LayerNorm parameters like TF; transformers renames them on load.
_LEGACY_SUFFIXES = ((".gamma", ".weight"), (".beta", ".bias"))


@functools.cache
def _files() -> dict[str, Path]:
    # Keyed by the shipped files' own names: a config's model_type is looked up, never used as a path.
    return {p.stem: p for p in sorted(MAPS_DIR.glob("*.json")) if not p.stem.startswith("_")}


@functools.cache
def _load(model_type: str) -> dict | None:
    path = _files().get(model_type)
    return json.loads(path.read_text()) if path else None


def available() -> list[str]:
    """The model types that have a map, e.g. ``"bert" in available()``."""
    return list(_files())


def find_map(config: dict | None) -> "ArchitectureMap | None":
    """The map for ``config["model_type"]`` and ``config["architectures"][0]`` (else the base model).

    >>> find_map({"model_type": "bert"}).architecture
    'BertModel'
    >>> find_map({"model_type": "no-such-model"}) is None
    True
    """
    if not config or not isinstance(config.get("model_type"), str):
        return None
    doc = _load(config["model_type"])
    if doc is None:
        return None
    for wanted in config.get("architectures") or []:
        # Configs saved from TF/Flax classes may carry the framework prefix.
        for name in (wanted, wanted.removeprefix("TF"), wanted.removeprefix("Flax")):
            if name in doc["architectures"]:
                return ArchitectureMap(doc, name)
    return ArchitectureMap(doc, _base_name(doc))


def _base_name(doc: dict) -> str:
    return doc.get("base_architecture") or next(iter(doc["architectures"]))


@dataclass(frozen=True)
class _Rule:
    pt: str
    native: dict[str, str | None]
    ops: dict[str, str]
    tied_to: str | None
    groups: tuple[str, ...] | None
    bare: bool = False
    # Per framework: further native weights written from the same PyTorch tensor (``tf_copies``).
    copies: dict[str, tuple["_Rule", ...]] = field(default_factory=dict)
    # For one of those copies: the primary's native template (the copy is dropped when read back).
    primary: str | None = None
    # The map entry itself: ``computed``, ``saved``, ``enabled_by``, ``{fw}_unsupported`` (see maps.computed).
    entry: dict = field(default_factory=dict, compare=False, hash=False, repr=False)

    def group(self, framework: str) -> tuple[str, str | None]:
        """(PT template, primary native template): the same for a tensor's primary and its copies."""
        return self.pt, self.primary or self.native[framework]


class _Index:
    """Template lookup: exact names in a dict, names with ``{i}`` placeholders as regexes."""

    def __init__(self) -> None:
        self.exact: dict[str, _Rule] = {}
        self.patterns: list[tuple[re.Pattern, _Rule]] = []

    def add(self, template: str, rule: _Rule) -> None:
        if "{" not in template:
            self.exact.setdefault(template, rule)
            return
        self.patterns.append((re.compile(template_regex(template) + r"\Z"), rule))

    def find(self, name: str) -> tuple[_Rule, list[str]] | None:
        if name in self.exact:
            return self.exact[name], []
        for rx, rule in self.patterns:
            m = rx.match(name)
            if m:
                values = {int(k[1:]): v for k, v in m.groupdict().items()}
                return rule, [values.get(i, "0") for i in range(max(values) + 1)]
        return None


def _rule(pt: str, e: dict, tied_to: str | None, primary: str | None = None,
          copies: dict[str, tuple[_Rule, ...]] | None = None) -> _Rule:
    """The rule of one map entry, or of one of its ``{fw}_copies`` (which carry only their own fields).

    >>> r = _rule("w", {"tf": "a/w", "tf_op": "T"}, None)
    >>> r.native["tf"], r.ops["tf"], r.native["flax"]
    ('a/w', 'T', None)
    """
    return _Rule(pt, {f: e.get(f) for f in FRAMEWORKS}, {f: e.get(f + "_op") or "identity" for f in FRAMEWORKS},
                 tied_to, tuple(e["tf_groups"]) if e.get("tf_groups") else None, bool(e.get("tf_bare")),
                 copies or {}, primary, e)


def _fill(template: str, values: list[str]) -> str:
    return template.format(*values) if values else template


class ArchitectureMap:
    """Where each tensor of one transformers architecture lives in TF and Flax files, and how.

    Attributes: ``model_type``, ``architecture`` (PyTorch class name), ``base_model_prefix``,
    ``tf_model_name`` (first component of Keras weight names, e.g. ``tf_bert_model``; None when
    the architecture has no TF class), ``tf_layers`` (the h5 root ``layer_names``, weightless layers
    included: transformers reports a layer missing from it), ``tf_h5_groups``, ``flax_batch_stats``.
    ``for_canonical`` / ``for_native`` say which sibling architecture a checkpoint's tensors belong to.
    """

    def __init__(self, doc: dict, architecture: str) -> None:
        self.doc = doc
        self.model_type: str = doc["model_type"]
        self.architecture = architecture
        self.base_model_prefix: str = doc.get("base_model_prefix") or ""
        arch = doc["architectures"][architecture]
        tf = arch.get("tf") or {}
        self.frameworks = tuple(f for f in FRAMEWORKS if f in arch)
        self.tf_model_name: str | None = tf.get("model_name")
        self.tf_layers: list[str] = list(tf.get("layers", []))
        self.tf_h5_groups: list[str] = list(tf.get("h5_groups", []))
        self.flax_batch_stats: bool = bool((arch.get("flax") or {}).get("batch_stats"))
        self._native_only = {f: set((arch.get(f) or {}).get("only", [])) for f in FRAMEWORKS}
        self._ignore = [re.compile(p) for p in (arch.get("pt") or {}).get("ignore_unexpected", [])]
        self._pt = _Index()
        self._native = {f: _Index() for f in FRAMEWORKS}
        self._prefixed = False
        for e in arch["tensors"]:
            copies = {f: tuple(_rule(e["pt"], c, e.get("tied_to"), primary=e[f]) for c in e.get(f + "_copies", []))
                      for f in FRAMEWORKS}
            rule = _rule(e["pt"], e, e.get("tied_to"), copies={f: c for f, c in copies.items() if c})
            self._pt.add(e["pt"], rule)
            self._prefixed |= bool(self.base_model_prefix) and e["pt"].startswith(self.base_model_prefix + ".")
            for f in FRAMEWORKS:
                for r in (rule, *copies[f]):
                    if r.native[f]:
                        self._native[f].add(r.native[f], r)

    def __repr__(self) -> str:
        return f"ArchitectureMap({self.model_type!r}, {self.architecture!r})"

    def siblings(self) -> list["ArchitectureMap"]:
        """The other architectures of this model_type: the configured one first, then the base model."""
        names = [self.architecture, _base_name(self.doc)] + list(self.doc["architectures"])
        return [self if n == self.architecture else ArchitectureMap(self.doc, n) for n in dict.fromkeys(names)]

    def tf_groups(self, native_name: str) -> list[str]:
        """The h5 groups (top-level Keras layers) that list a full TF weight name; usually one.

        A head layer that reuses the embeddings lists them again (BERT's ``mlm___cls``), and
        transformers' loader looks for them under each layer, so the writer puts them in each.

        >>> find_map({"model_type": "bert"}).tf_groups("tf_bert_model/bert/pooler/dense/bias")
        ['bert']
        """
        short = native_name.split("/", 1)[1] if "/" in native_name else native_name
        found = self._native["tf"].find(short)
        if found and found[0].groups:
            return list(found[0].groups)
        return [short.split("/", 1)[0]]

    # -- PyTorch -> framework ------------------------------------------------------------------

    def _pt_candidates(self, name: str) -> list[str]:
        # Base and head checkpoints cross-load: try the key as given, then with the base-model
        # prefix removed or added, each also with legacy LayerNorm names.
        p = self.base_model_prefix + "."
        names = [name]
        if self.base_model_prefix:
            names.append(name[len(p):] if name.startswith(p) else p + name)
        for old, new in _LEGACY_SUFFIXES:
            names += [n[: -len(old)] + new for n in list(names) if n.endswith(old)]
        return names

    def _find_pt(self, name: str) -> tuple[_Rule, list[str]] | None:
        for candidate in self._pt_candidates(name):
            found = self._pt.find(candidate)
            if found:
                return found
        return None

    def from_canonical(self, framework: str, specs: dict[str, Spec]) -> dict[str, Target]:
        """Canonical PT name -> (native name, op on the PT tensor), or None where the framework has none.

        A tensor that feeds several native weights (a map entry with ``tf_copies``, e.g. XGLM's
        embeddings, also its TF ``lm_head/kernel``) gets a list of (native name, op), primary first.

        TF names are full Keras names without ``:0`` (``tf_bert_model/bert/...``); Flax names are
        ``/``-joined tree paths (``params/...`` for BatchNorm models).  If this architecture cannot
        place every tensor but another of the same model_type can (a head checkpoint under a base
        config), that one is used.  Raises LayoutError naming a tensor no architecture places.

        >>> m = find_map({"model_type": "bert", "architectures": ["BertModel"]})
        >>> m.from_canonical("flax", {"bert.pooler.dense.bias": ((384,), "F32")})["bert.pooler.dense.bias"][0]
        'pooler/dense/bias'
        >>> x = find_map({"model_type": "xglm", "architectures": ["XGLMForCausalLM"]})
        >>> [(n, str(op)) for n, op in x.from_canonical("tf", {"model.embed_tokens.weight": ((99, 32), "F32")})[
        ...     "model.embed_tokens.weight"]]
        [('tfxglm_for_causal_lm/model/embed_tokens/weight', 'identity'), ('tfxglm_for_causal_lm/lm_head/kernel', 'T')]
        """
        return self.for_canonical(framework, specs)[1]

    def for_canonical(self, framework: str, specs: dict[str, Spec]) -> tuple["ArchitectureMap", dict[str, Target]]:
        """(the architecture that places every canonical tensor, its ``from_canonical`` result).

        Usually ``self``; a sibling when the checkpoint is another architecture of this model_type.
        Its ``tf_model_name`` and ``tf_layers`` describe the file written.

        >>> m = find_map({"model_type": "bert", "architectures": ["BertModel"]})
        >>> m.for_canonical("tf", {"qa_outputs.bias": ((2,), "F32")})[0]
        ArchitectureMap('bert', 'BertForQuestionAnswering')
        """
        self._check_framework(framework)
        return self._resolve(framework, lambda m: m._from_canonical(framework, specs))

    def _from_canonical(self, framework: str, specs: dict[str, Spec]) -> tuple[dict, list[str]]:
        out: dict[str, tuple[str, Op] | None] = {}
        unplaced: list[str] = []
        targets: dict[str, str] = {}
        for name, (shape, _dtype) in specs.items():
            found = self._find_pt(name)
            if found is None:
                if any(rx.search(name) for rx in self._ignore):
                    out[name] = None  # transformers drops these keys on load, so do we
                else:
                    unplaced.append(name)
                continue
            rule, values = found
            if rule.native[framework] is None and rule.tied_to and not self._has(specs, rule.tied_to, values):
                # The tied partner is absent from this file: this copy is the one to write.
                found = self._find_pt(_fill(rule.tied_to, values))
                rule, values = found if found else (rule, values)
            if rule.native[framework] is None:
                why = rule.entry.get(f"{framework}_unsupported")
                if why:  # the framework cannot hold it: a file without it would compute something else
                    raise LayoutError(name, f"comes with the config setting {enabled_text(rule.entry)}, which "
                                            f"{framework} cannot carry: {why}")
                out[name] = None
                continue
            placed = [self._place(framework, r, values, name, shape, targets)
                      for r in (rule, *rule.copies.get(framework, ()))]
            out[name] = placed if len(placed) > 1 else placed[0]
        return out, unplaced

    def _place(self, framework: str, rule: _Rule, values: list[str], name: str, shape: tuple,
               targets: dict[str, str]) -> tuple[str, Op]:
        native = _fill(rule.native[framework], values)
        if framework == "tf" and self.tf_model_name and not rule.bare:
            native = f"{self.tf_model_name}/{native}"
        op = parse(rule.ops[framework])
        try:
            op.shape(tuple(shape))
        except ValueError as exc:
            raise LayoutError(name, f"shape {tuple(shape)} does not fit {framework} op {op}: {exc}") from None
        if native in targets:
            raise LayoutError(name, f"both {targets[native]!r} and {name!r} map to {framework} {native!r}")
        targets[native] = name
        return native, op

    def _has(self, specs: dict[str, Spec], template: str, values: list[str]) -> bool:
        target = _fill(template, values)
        return any(target in self._pt_candidates(n) for n in specs)

    # -- framework -> PyTorch ------------------------------------------------------------------

    def to_canonical(self, framework: str, specs: dict[str, Spec]) -> dict[str, tuple[str, Op] | None]:
        """Native name -> (canonical PT name, op on the native tensor), or None to drop the tensor.

        >>> m = find_map({"model_type": "bert", "architectures": ["BertModel"]})
        >>> name, op = m.to_canonical("tf", {"tf_bert_model/bert/pooler/dense/kernel": ((8, 8), "F32")})[
        ...     "tf_bert_model/bert/pooler/dense/kernel"]
        >>> name, str(op)
        ('pooler.dense.weight', 'T')

        A copy (``tf_copies``) of a tensor whose primary is in the file is dropped:

        >>> x = find_map({"model_type": "xglm", "architectures": ["XGLMForCausalLM"]})
        >>> back = x.to_canonical("tf", {"m/model/embed_tokens/weight": ((99, 32), "F32"),
        ...                              "m/lm_head/kernel": ((32, 99), "F32")})
        >>> back["m/model/embed_tokens/weight"][0], back["m/lm_head/kernel"]
        ('model.embed_tokens.weight', None)
        """
        return self.for_native(framework, specs)[1]

    def for_native(self, framework: str, specs: dict[str, Spec]) -> tuple["ArchitectureMap", dict]:
        """(the architecture that reads every native tensor, its ``to_canonical`` result)."""
        self._check_framework(framework)
        return self._resolve(framework, lambda m: m._to_canonical(framework, specs))

    def _native_candidates(self, framework: str, name: str) -> list[str]:
        if framework == "tf":
            # transformers drops the model name unless the name has a single component.
            return [name.split("/", 1)[1] if "/" in name else name]
        p = self.base_model_prefix + "/"
        names = [name]
        for root in ("", "params/", "batch_stats/"):
            if name.startswith(root) and self.base_model_prefix:
                rest = name[len(root):]
                names.append(root + (rest[len(p):] if rest.startswith(p) else p + rest))
        return names

    def _to_canonical(self, framework: str, specs: dict[str, Spec]) -> tuple[dict, list[str]]:
        out: dict[str, tuple[str, Op] | None] = {}
        unplaced: list[str] = []
        found: dict[str, tuple[_Rule, list[str]]] = {}
        for name in specs:
            hit = None
            for candidate in self._native_candidates(framework, name):
                hit = self._native[framework].find(candidate)
                if hit:
                    break
            if hit is not None:
                found[name] = hit
            elif any(c in self._native_only[framework] for c in self._native_candidates(framework, name)):
                out[name] = None  # transformers has it in this framework only (it never reaches PT)
            else:
                unplaced.append(name)
        # Primaries first: a copy (a second native weight of one PT tensor) is read back only when
        # its primary is absent from the file, and dropped otherwise.
        seen: dict[str, tuple[str, _Rule]] = {}
        for name, (rule, values) in sorted(found.items(), key=lambda kv: kv[1][0].primary is not None):
            pt = _fill(rule.pt, values)
            if pt in seen:
                if rule.primary is not None and seen[pt][1].group(framework) == rule.group(framework):
                    out[name] = None  # a copy of the PyTorch tensor already read from seen[pt][0]
                    continue
                raise LayoutError(name, f"both {seen[pt][0]!r} and {name!r} map to PyTorch {pt!r}")
            try:
                op = parse(rule.ops[framework]).inverse()
                op.shape(tuple(specs[name][0]))
            except ValueError as exc:
                raise LayoutError(name, f"cannot invert {framework} op {rule.ops[framework]} for shape "
                                        f"{tuple(specs[name][0])}: {exc}") from None
            seen[pt] = (name, rule)
            out[name] = (pt, op)
        return {n: out[n] for n in specs if n in out}, unplaced

    # -- shared ------------------------------------------------------------------------------

    def _check_framework(self, framework: str) -> None:
        if framework not in FRAMEWORKS:
            raise ValueError(f"framework must be one of {FRAMEWORKS}, not {framework!r}")
        if framework not in self.frameworks:
            raise LayoutError(self.architecture, f"transformers {self.model_type} has no {framework} class "
                                                 f"for {self.architecture} (or it is not covered)")

    def _resolve(self, framework: str, run) -> tuple["ArchitectureMap", dict]:
        first_unplaced: list[str] | None = None
        for candidate in self.siblings():
            if framework not in candidate.frameworks:
                continue
            out, unplaced = run(candidate)
            if not unplaced:
                return candidate, out
            first_unplaced = first_unplaced if first_unplaced is not None else unplaced
        name = first_unplaced[0]
        more = f" (and {len(first_unplaced) - 1} more)" if len(first_unplaced) > 1 else ""
        raise LayoutError(name, f"not in the transformers {self.model_type} layout map for "
                                f"{self.architecture} or any sibling architecture{more}; {self.options_hint(name)}")

    def options_hint(self, name: str = "") -> str:
        """Which config settings the map was built from, for an unknown tensor's error.

        >>> find_map({"model_type": "electra"}).options_hint()
        'the map was recorded from the tiny config and from embedding_size=16, ...'
        >>> find_map({"model_type": "deberta"}).options_hint("deberta.embeddings.embed_proj.weight")
        "it comes with the config setting embedding_size=16, with which transformers' class fails to build: ..."
        """
        p = self.base_model_prefix + "."
        generic = re.sub(r"\.\d+\.", ".{n}.", name[len(p):] if self.base_model_prefix and name.startswith(p) else name)
        for v in self.doc.get("variants", []):
            if generic in v.get("pt_keys", []) and not v.get("split"):
                setting = ", ".join(f"{k}={x}" for k, x in v["config"].items())
                return (f"it comes with the config setting {setting}, with which transformers' class fails to build: "
                        f"{v.get('error', '')} (so no file of that framework can hold it)")
        tried = [", ".join(f"{k}={v}" for k, v in v["config"].items())
                 + (" (transformers fails to build it)" if v.get("error") else "")
                 for v in self.doc.get("variants", []) if not v.get("split")]
        if not tried:
            return "the map was recorded from one config (no option of this model_type adds tensors it lacks)"
        return ("the map was recorded from the tiny config and from " + "; ".join(tried) + ": none of those recorded "
                "creates it (regenerate the maps with a VARIANTS row in mapgen/build.py for the setting that does)")

    def note(self, name: str) -> str | None:
        """For ``--explain``: the config setting that creates an optional PyTorch tensor, else None.

        >>> find_map({"model_type": "electra"}).note("embeddings_project.weight")
        'present when embedding_size=16'
        """
        found = self._find_pt(name)
        text = enabled_text(found[0].entry) if found else None
        return f"present when {text}" if text else None

    # -- tensors the framework file lacks ------------------------------------------------------

    def missing_pt(self, framework: str, present: set[str], config: dict | None) -> tuple[list[tuple[str, dict]], list[str]]:
        """The PyTorch tensors a ``framework`` file cannot hold: ([(name, computed spec)], [unrecoverable names]).

        See ``maps.optional.missing_tensors``.

        >>> m = find_map({"model_type": "resnet", "architectures": ["ResNetModel"]})
        >>> got, lost = m.missing_pt("flax", {"embedder.embedder.normalization.running_mean"}, {})
        >>> got[0][0], got[0][1]["fn"], lost
        ('embedder.embedder.normalization.num_batches_tracked', 'zeros', [])
        """
        return missing_tensors(self.doc["architectures"][self.architecture]["tensors"], framework, present, config or {})
