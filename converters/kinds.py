"""What each tensor is: the kinds of PyTorch modules and how a module's kind is decided.

A PyTorch state dict does not say whether a 2-D ``weight`` belongs to a Linear or an
Embedding, yet the target name and transpose depend on it.  Kinds are decided per module
(the name up to the last dot), from these sources in order:

1. a layout map for the architecture (``config.json`` ``model_type``; see ``layout_maps``),
2. the structure of a model the caller gives (``structure=``: module name → kind),
3. the layout itself, when every kind that fits gives the same files for the requested targets,
4. the named heuristics in ``HEURISTICS`` (reported as such; ``strict`` turns them into errors).

Anything still undecided is a ``LayoutError`` naming the tensor.

>>> mods = group({"fc.weight": ((4, 3), "float32"), "fc.bias": ((4,), "float32")})
>>> candidates(mods["fc"])
['linear']
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import InputError


# kind → {leaf: allowed ranks}; the first leaf is required, `required` adds more.
KINDS: dict[str, dict[str, tuple[int, ...]]] = {
    "linear": {"weight": (2,), "bias": (1,)},
    "embedding": {"weight": (2,)},
    "conv": {"weight": (3, 4, 5), "bias": (1,)},
    "depthwise": {"weight": (4,), "bias": (1,)},
    "conv_transpose": {"weight": (3, 4, 5), "bias": (1,)},
    "norm": {"weight": (1,), "bias": (1,)},  # LayerNorm, RMSNorm, GroupNorm: one layout
    "batchnorm": {"running_mean": (1,), "running_var": (1,), "weight": (1,), "bias": (1,), "num_batches_tracked": (0,)},
    "lstm": {"weight_ih_l0": (2,), "weight_hh_l0": (2,), "bias_ih_l0": (1,), "bias_hh_l0": (1,)},
    "gru": {"weight_ih_l0": (2,), "weight_hh_l0": (2,), "bias_ih_l0": (1,), "bias_hh_l0": (1,)},
    "param": {},  # a lone tensor with a name of its own: copied as is
    "buffer": {},  # the same, for integer (non-trainable) tensors
}
REQUIRED = {"lstm": {"weight_hh_l0"}, "gru": {"weight_hh_l0"}}
# Gates per row block of weight_hh, which tells LSTM (4) from GRU (3).
GATES = {"lstm": 4, "gru": 3}

# (kinds that fit, regex on the module name, kind chosen, why) — tried in order.
HEURISTICS: list[tuple[frozenset[str], str, str, str]] = [
    (frozenset({"linear", "embedding"}), r"(^|[._])(embed\w*|\w*embeddings?|wte|wpe|tok\w*|shared|vocab\w*)$", "embedding", "2-D weight without bias in a module named like an embedding"),
    (frozenset({"linear", "embedding"}), r"", "linear", "2-D weight without bias taken as a bias-free Linear"),
    (frozenset({"conv", "conv_transpose", "depthwise"}), r"(transpose|deconv|convt|upconv|(^|[._])up\d*$|upsample)", "conv_transpose", "module named like a transposed convolution"),
    (frozenset({"conv", "conv_transpose", "depthwise"}), r"(depthwise|(^|[._])dw(conv)?\d*$|dwconv)", "depthwise", "module named like a depthwise convolution"),
    (frozenset({"conv", "conv_transpose"}), r"", "conv", "convolution weight taken as a plain Conv"),
    (frozenset({"param"}), r"", "param", "float tensor outside any known module taken as a parameter (not a buffer)"),
]


@dataclass
class Module:
    """A PyTorch module's tensors: leaf name → (shape, dtype name)."""

    name: str
    leaves: dict[str, tuple[tuple[int, ...], str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    kind: str
    how: str  # "map", "structure", "layout" or "heuristic"
    why: str = ""
    params: tuple[tuple[str, int], ...] = ()

    def param(self, name: str, default: int | None = None) -> int | None:
        return dict(self.params).get(name, default)


def split_name(name: str) -> tuple[str, str]:
    """``"a.b.weight"`` → ``("a.b", "weight")``; a top-level tensor has module ``""``."""
    module, _, leaf = name.rpartition(".")
    return module, leaf


def group(specs: dict[str, tuple[tuple[int, ...], str]]) -> dict[str, Module]:
    """Group canonical tensors into modules; leaves no kind knows become modules of their own.

    >>> sorted(group({"m.weight": ((2, 2), "float32"), "m.scale": ((), "float32")}))
    ['m', 'm.scale']
    """
    known = {leaf for leaves in KINDS.values() for leaf in leaves}
    mods: dict[str, Module] = {}
    for name, spec in specs.items():
        module, leaf = split_name(name)
        if leaf in known:
            mods.setdefault(module, Module(module)).leaves[leaf] = (tuple(spec[0]), str(spec[1]))
        else:
            mods[name] = Module(name, {"": (tuple(spec[0]), str(spec[1]))})
    return mods


def candidates(module: Module) -> list[str]:
    """Kinds whose leaves and ranks fit the module."""
    if set(module.leaves) == {""}:
        shape, dtype = module.leaves[""]
        return ["buffer"] if not _is_float(dtype) else ["param"]
    out = []
    for kind, allowed in KINDS.items():
        if not allowed or not set(module.leaves) <= set(allowed):
            continue
        first = next(iter(allowed))
        if first not in module.leaves or not REQUIRED.get(kind, set()) <= set(module.leaves):
            continue
        if all(len(shape) in allowed[leaf] for leaf, (shape, _) in module.leaves.items()) and _fits(kind, module):
            out.append(kind)
    return out


def _fits(kind: str, module: Module) -> bool:
    if kind in GATES:
        rows, cols = module.leaves["weight_hh_l0"][0]
        return rows == GATES[kind] * cols
    if kind == "depthwise":
        return module.leaves["weight"][0][1] == 1
    return True


def _is_float(dtype: str) -> bool:
    from . import dtypes

    return dtypes.is_float(dtypes.from_name(dtype))


def parse_kind(text: str) -> tuple[str, tuple[tuple[str, int], ...]]:
    """``"depthwise:2"`` → ``("depthwise", (("multiplier", 2),))``; ValueError for anything else."""
    if not isinstance(text, str):
        raise ValueError(f"a kind is a name such as 'linear', not {text!r}")
    kind, sep, arg = text.partition(":")
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; known: {', '.join(KINDS)}")
    if sep and (kind != "depthwise" or not arg.isdecimal() or int(arg) < 1):
        raise ValueError(f"{text!r}: only depthwise takes a multiplier, a whole number ≥ 1 (depthwise:2)")
    return kind, ((("multiplier", int(arg)),) if arg else ())


def check_table(table: object, where: object) -> dict[str, str]:
    """A ``{regex: kind}`` table (``--kind``, ``kinds=``, a layout map), every regex and kind checked.

    >>> check_table({"fc": "linear"}, "--kind")
    {'fc': 'linear'}
    >>> check_table({"(fc": "linear"}, "--kind")
    Traceback (most recent call last):
    ...
    tensorferry.converters.errors.InputError: --kind: '(fc' is not a regular expression (missing ), unterminated subpattern at position 0)
    """
    if not isinstance(table, dict):
        raise InputError(where, "kinds must be an object of {regex: kind}")
    check_regexes(table, where)
    for pattern, kind in table.items():
        try:
            parse_kind(kind)
        except ValueError as e:
            raise InputError(where, f"{pattern}: {e}") from None
    return table


def check_regexes(patterns, where: object, what: str = "") -> None:
    """Every pattern compiles (InputError naming ``where`` otherwise).

    >>> check_regexes(["encoder\\.\\d+", "head"], "--kind")
    """
    for pattern in patterns:
        try:
            re.compile(pattern)
        except (re.error, TypeError) as e:
            raise InputError(where, f"{what}{pattern!r} is not a regular expression ({e})") from None


def lookup(patterns: dict[str, str] | None, module: str) -> str | None:
    """The kind a ``{regex: kind}`` table gives a module name (full match), or None."""
    for pattern, kind in (patterns or {}).items():
        if re.fullmatch(pattern, module):
            return kind
    return None


def heuristic(module: Module, fits: list[str]) -> Decision | None:
    """The first heuristic whose kinds include the candidates and whose pattern matches."""
    for kinds, pattern, kind, why in HEURISTICS:
        if kind in fits and set(fits) <= kinds and re.search(pattern, module.name):
            return Decision(kind, "heuristic", why)
    return None


def default_params(kind: str, module: Module) -> tuple[tuple[str, int], ...]:
    """Parameters a kind needs when nobody gave them (a depthwise conv's multiplier is 1)."""
    return (("multiplier", 1),) if kind == "depthwise" else ()



# PyTorch module classes → kinds, for ``structure=`` given as a model.
TORCH_CLASSES = {
    "Linear": "linear", "Embedding": "embedding",
    "Conv1d": "conv", "Conv2d": "conv", "Conv3d": "conv",
    "ConvTranspose1d": "conv_transpose", "ConvTranspose2d": "conv_transpose", "ConvTranspose3d": "conv_transpose",
    "LayerNorm": "norm", "GroupNorm": "norm", "RMSNorm": "norm",
    "BatchNorm1d": "batchnorm", "BatchNorm2d": "batchnorm", "BatchNorm3d": "batchnorm",
    "LSTM": "lstm", "GRU": "gru",
}


def kinds_from_torch(model, all_modules: bool = False) -> dict[str, str]:
    """A ``{regex: kind}`` structure table from a ``torch.nn.Module``'s own submodule classes.

    >>> import torch                                                   # doctest: +SKIP
    >>> kinds_from_torch(torch.nn.Sequential(torch.nn.Conv2d(4, 8, 3, groups=4)))  # doctest: +SKIP
    {'0': 'depthwise:2'}

    Keys follow the model's own module order; ``all_modules`` also lists modules of no known
    kind (with kind ``""``), so the order is complete.
    """
    out = {}
    for name, mod in model.named_modules():
        kind = TORCH_CLASSES.get(type(mod).__name__)
        if kind == "conv" and getattr(mod, "groups", 1) > 1 and mod.groups == mod.in_channels and len(mod.kernel_size) == 2:
            kind = f"depthwise:{mod.out_channels // mod.groups}"
        if kind or (all_modules and name):
            out[re.escape(name)] = kind or ""
    return out
