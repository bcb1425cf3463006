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


WN_G, WN_V = "parametrizations.weight.original0", "parametrizations.weight.original1"
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
    # torch.nn.utils.parametrizations.weight_norm on a Linear/Conv: g (original0) and v (original1).
    # The older weight_norm's weight_g/weight_v are lone tensors, copied under their own names.
    "weight_norm": {WN_V: (2, 3, 4, 5), WN_G: (1, 2, 3, 4, 5), "bias": (1,)},
    "param": {},  # a lone tensor with a name of its own: copied as is
    "buffer": {},  # the same, for integer (non-trainable) tensors
}
REQUIRED: dict[str, set[str]] = {"weight_norm": {WN_G}}
# Gates per row block of weight_hh, which tells LSTM (4) from GRU (3).
GATES = {"lstm": 4, "gru": 3}
# A recurrent module holds one set of leaves per layer k and direction ("" or "_reverse"):
# weight_ih_l0 … weight_hh_l2_reverse; an LSTM with proj_size also has weight_hr_l{k}.
RNN_LEAF = re.compile(r"(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l(\d+)(_reverse)?")
DIRECTIONS = ("", "_reverse")
RNN_BASES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")

# (kinds that fit, regex on the module name, kind chosen, why) — tried in order.
HEURISTICS: list[tuple[frozenset[str], str, str, str]] = [
    (frozenset({"linear", "embedding"}), r"(^|[._])(embed\w*|\w*embeddings?|wte|wpe|tok\w*|shared|vocab\w*)$", "embedding", "2-D weight without bias in a module named like an embedding"),
    (frozenset({"linear", "embedding"}), r"", "linear", "2-D weight without bias taken as a bias-free Linear"),
    (frozenset({"conv", "conv_transpose", "depthwise"}), r"(transpose|deconv|convt|upconv|(^|[._])up\d*$|upsample)", "conv_transpose", "module named like a transposed convolution"),
    (frozenset({"conv", "conv_transpose", "depthwise"}), r"(depthwise|(^|[._])dw(conv)?\d*$|dwconv)", "depthwise", "module named like a depthwise convolution"),
    (frozenset({"conv", "conv_transpose", "depthwise"}), r"(^|[._])ConvTranspose_\d+$", "conv_transpose", "linen auto-name of an nn.ConvTranspose"),
    (frozenset({"conv", "conv_transpose", "depthwise"}), r"(^|[._])Conv_\d+$", "conv", "linen auto-name of an nn.Conv (grouped or not)"),
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


@dataclass(frozen=True)
class RNNShape:
    """A stacked (and maybe bidirectional) LSTM/GRU read from its leaves.

    ``input_sizes[k]`` is layer k's input width (layers after the first take ``hidden·directions``).
    """

    layers: int
    directions: int
    hidden: int
    input_sizes: tuple[int, ...]
    bias: bool
    proj: int = 0  # LSTM proj_size (0: none)

    def cells(self) -> list[tuple[int, str]]:
        """(layer, direction suffix) of every cell, in PyTorch's order: l0, l0_reverse, l1, …"""
        return [(k, d) for k in range(self.layers) for d in DIRECTIONS[:self.directions]]


def rnn_shape(leaves: dict[str, tuple[tuple[int, ...], str]], gates: int) -> RNNShape | None:
    """The structure of a recurrent module's leaves with GATES gates, or None if they are not one.

    >>> shapes = {"weight_ih": (8, 4), "weight_hh": (8, 2), "bias_ih": (8,), "bias_hh": (8,)}
    >>> leaves = {f"{w}_l{k}{d}": (s, "float32") for w, s in shapes.items() for k in (0, 1) for d in ("", "_reverse")}
    >>> rnn_shape(leaves, 4)  # nn.LSTM(4, 2, num_layers=2, bidirectional=True): layer 1 reads 2·2 wide
    RNNShape(layers=2, directions=2, hidden=2, input_sizes=(4, 4), bias=True, proj=0)
    """
    cells: dict[tuple[int, str], dict[str, tuple[int, ...]]] = {}
    for leaf, spec in leaves.items():
        m = RNN_LEAF.fullmatch(leaf)
        if not m:
            return None
        cells.setdefault((int(m.group(2)), m.group(3) or ""), {})[m.group(1)] = tuple(spec[0])
    layers = 1 + max((k for k, _ in cells), default=-1)
    dirs = 2 if any(d for _, d in cells) else 1
    if not cells or set(cells) != {(k, d) for k in range(layers) for d in DIRECTIONS[:dirs]}:
        return None
    first = cells[(0, "")]
    if "weight_ih" not in first or "weight_hh" not in first or len(first["weight_hh"]) != 2:
        return None
    proj = first["weight_hr"][0] if "weight_hr" in first else 0
    hidden = first["weight_hh"][0] // gates
    bias = "bias_ih" in first
    want_keys = {"weight_ih", "weight_hh"} | ({"bias_ih", "bias_hh"} if bias else set()) | ({"weight_hr"} if proj else set())
    inputs = []
    for (k, d), cell in sorted(cells.items()):
        out = proj or hidden
        if set(cell) != want_keys or cell["weight_hh"] != (gates * hidden, out) or len(cell["weight_ih"]) != 2 \
                or cell["weight_ih"][0] != gates * hidden or (proj and cell["weight_hr"] != (proj, hidden)) \
                or (bias and not cell["bias_ih"] == cell["bias_hh"] == (gates * hidden,)):
            return None
        if k and cell["weight_ih"][1] != out * dirs:
            return None
        if not d:
            inputs.append(cell["weight_ih"][1])
    if hidden * gates != first["weight_hh"][0] or hidden == 0:
        return None
    return RNNShape(layers, dirs, hidden, tuple(inputs), bias, proj)


def split_name(name: str) -> tuple[str, str]:
    """``"a.b.weight"`` → ``("a.b", "weight")``; a top-level tensor has module ``""``.

    A parametrization's tensors belong to the module they parametrize:
    >>> split_name("conv.parametrizations.weight.original0")
    ('conv', 'parametrizations.weight.original0')
    """
    for leaf in (WN_G, WN_V):
        if name == leaf or name.endswith("." + leaf):
            return name[: -len(leaf) - 1] if name != leaf else "", leaf
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
        if leaf in known or RNN_LEAF.fullmatch(leaf):
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
        if kind in GATES:
            if rnn_shape(module.leaves, GATES[kind]) is not None:
                out.append(kind)
            continue
        if not allowed or not set(module.leaves) <= set(allowed):
            continue
        first = next(iter(allowed))
        if first not in module.leaves or not REQUIRED.get(kind, set()) <= set(module.leaves):
            continue
        if all(len(shape) in allowed[leaf] for leaf, (shape, _) in module.leaves.items()) and _fits(kind, module):
            out.append(kind)
    return out


def _fits(kind: str, module: Module) -> bool:
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

    >>> check_regexes([r"encoder\\.\\d+", "head"], "--kind")
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
WEIGHT_NORMED = ("Linear", "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d")


def kinds_from_torch(model, all_modules: bool = False) -> dict[str, str]:
    """A ``{regex: kind}`` structure table from a ``torch.nn.Module``'s own submodule classes.

    >>> import torch
    >>> kinds_from_torch(torch.nn.Sequential(torch.nn.Conv2d(4, 8, 3, groups=4)))
    {'0': 'depthwise:2'}

    Keys follow the model's own module order; ``all_modules`` also lists modules of no known
    kind (with kind ``""``), so the order is complete.
    """
    out = {}
    for name, mod in model.named_modules():
        kind = torch_kind(mod)
        if kind or (all_modules and name):
            out[re.escape(name)] = kind or ""
    return out


def kinds_table(structure: object | None) -> dict[str, str] | None:
    """The ``{regex: kind}`` table a torch module gives for verification (known kinds only), or None
    (no module, or none of known kind).

    >>> kinds_table(None) is None
    True
    """
    if structure is None:
        return None
    return {k: v for k, v in kinds_from_torch(structure).items() if v} or None


def torch_kind(mod) -> str | None:
    """The kind of one ``torch.nn.Module`` from its class (``depthwise:m`` for a depthwise Conv2d), or None.

    >>> import torch
    >>> torch_kind(torch.nn.Conv2d(4, 8, 3, groups=4)), torch_kind(torch.nn.LSTM(3, 5, num_layers=2)), torch_kind(torch.nn.ReLU())
    ('depthwise:2', 'lstm', None)
    """
    cls = type(mod).__name__.removeprefix("Parametrized")  # parametrize swaps in a subclass
    kind = TORCH_CLASSES.get(cls)
    if cls in WEIGHT_NORMED and "weight" in getattr(mod, "parametrizations", {}):
        return "weight_norm"
    if kind == "conv" and getattr(mod, "groups", 1) > 1 and mod.groups == mod.in_channels and len(mod.kernel_size) == 2:
        return f"depthwise:{mod.out_channels // mod.groups}"
    return kind
