"""A Flax NNX module as slots, and the ``nnx.state`` its Orbax checkpoint must restore into.

``nnx.state(model)`` lists every variable by path (``('blocks', 0, 'attn', 'q', 'kernel')``), sorted;
the module's attributes (``vars()``) give creation order.  Parameters (``nnx.Param``) and batch
statistics (``nnx.BatchStat``) are the model's weights: they are read as a linen-style tree
(``params`` / ``batch_stats``, NNX's ``if_`` as linen's ``if``) and paired by the linen walker
(``guided.flax``), every slot in creation order and of the class its NNX module has.  Every other
state entry (RNG keys and counts) is no weight: the writer takes it from the template model.

>>> from flax import nnx                                             # doctest: +SKIP
>>> model = nnx.Linear(3, 4, rngs=nnx.Rngs(0))                       # doctest: +SKIP
>>> [(s.label, [v.name for v in s.vars]) for s in slots(model)]       # doctest: +SKIP
[('', ['params/kernel', 'params/bias'])]
"""
from __future__ import annotations

from dataclasses import dataclass

from . import flax as linen
from .structure import Slot

# NNX names linen spells otherwise (``if`` is a Python keyword).
RENAMED = {"if_": "if"}
# NNX module class → the kinds its weights can hold (where leaves alone leave a choice).
CLASS_KINDS = {"Conv": {"conv", "depthwise"}, "ConvTranspose": {"conv_transpose"}, "Linear": {"linear"},
               "Embed": {"embedding"}, "LayerNorm": {"norm"}, "RMSNorm": {"norm"}, "GroupNorm": {"norm"}, "BatchNorm": {"batchnorm"}}
# NNX module class → its kind, for an Orbax source read with the NNX model as structure.
CLASS_KIND = {"Conv": "conv", "ConvTranspose": "conv_transpose", "Linear": "linear", "Embed": "embedding", "LayerNorm": "norm",
              "RMSNorm": "norm", "GroupNorm": "norm", "BatchNorm": "batchnorm", "LSTMCell": "lstm"}
WEIGHTS = {"Param": "params", "BatchStat": "batch_stats"}  # NNX variable type → the collection a weight goes in


def is_nnx(model: object) -> bool:
    """Whether MODEL is a Flax NNX module.

    >>> is_nnx(object())
    False
    """
    return any(c.__module__.startswith("flax.nnx") and c.__name__ == "Module" for c in type(model).__mro__)


@dataclass
class NNXLayout:
    """What the Orbax checkpoint holds: the template's state, and for each weight its linen-style name → state path."""

    template: object  # nnx.State of the model as given
    paths: dict[str, tuple]


def _creation_order(model) -> tuple[dict[tuple, int], dict[tuple, str]]:
    """Each variable path's rank in creation order, and each module path's class name."""
    from flax import nnx

    rank: dict[tuple, int] = {}
    classes: dict[tuple, str] = {}
    seen: set[int] = set()

    def walk(obj, path: tuple) -> None:
        if id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, nnx.Variable):
            rank.setdefault(path, len(rank))
            return
        if isinstance(obj, nnx.Module):
            classes[path] = type(obj).__name__
            items = [(k, v) for k, v in vars(obj).items() if not k.startswith("_")]
        elif isinstance(obj, (list, tuple, nnx.List)):
            items = list(enumerate(obj))
        elif isinstance(obj, (dict, nnx.Dict)):
            items = list(obj.items())
        else:
            return
        for key, value in items:
            walk(value, path + (str(key),))  # nnx.List keeps items under '0', '1'; state paths say 0, 1

    walk(model, ())
    return rank, classes


def _key(path: tuple) -> tuple:
    return tuple(str(k) for k in path)


def record(model) -> NNXLayout:
    """The model's state and where each weight goes in it."""
    return NNXLayout(*_tree(model)[1:3])


def _tree(model) -> tuple[dict, object, dict[str, tuple], dict[tuple, int], dict[tuple, str]]:
    from flax import nnx

    state = nnx.state(model)
    flat = list(nnx.to_flat_state(state))
    rank, classes = _creation_order(model)
    flat.sort(key=lambda pv: rank.get(_key(pv[0]), len(rank)))
    tree: dict = {}
    paths: dict[str, tuple] = {}
    for path, var in flat:
        coll = WEIGHTS.get(type(var).__name__)
        if coll is None:
            continue  # RNG state and the like: not weights, kept from the template
        keys = [RENAMED.get(str(k), str(k)) for k in path]
        node = tree.setdefault(coll, {})
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = var.get_value()
        paths["/".join([coll, *keys])] = path
    if not paths:
        raise ValueError("the NNX model has no nnx.Param or nnx.BatchStat")
    tree.setdefault("params", {})
    return tree, state, paths, rank, classes


def slots(model) -> list[Slot]:
    """MODEL's weighted modules in creation order, each of its NNX class's kinds."""
    tree, _, paths, rank, classes = _tree(model)
    out = linen.slots(tree)
    for slot in out:
        first = paths[slot.vars[0].name]
        slot.order, slot.ordered, slot.tree = (rank.get(_key(first), len(rank)),), True, None
        depth = len(first) - len(slot.vars[0].leaf.split("/"))
        cls = classes.get(_key(first[:depth]))
        if cls in CLASS_KINDS and not slot.cells and CLASS_KINDS[cls] & slot.kinds:
            slot.kinds = frozenset(CLASS_KINDS[cls] & slot.kinds)
            slot.cls = f"nnx.{cls}"
    return out


def structure(model) -> tuple[list[str], dict[str, str]]:
    """MODEL as the structure of its own checkpoint: module regexes in creation order (every prefix where
    it first appears) and {regex: kind} from each module's class (a conv grouped per channel is depthwise)."""
    import re

    from ..layouts import flax as fx

    _, classes = _creation_order(model)
    order: dict[str, None] = {}
    kinds: dict[str, str] = {}
    for path, cls in classes.items():
        for i in range(1, len(path) + 1):
            order.setdefault(re.escape(fx.canonical_module("/".join(path[:i]))), None)
        kind = CLASS_KIND.get(cls)
        if kind and kind != "lstm" and path:
            kinds[re.escape(fx.canonical_module("/".join(path)))] = kind
    for path, module in _modules(model):
        groups = getattr(module, "feature_group_count", 1)
        if type(module).__name__ == "Conv" and groups > 1 and groups == module.in_features and len(module.kernel_size) == 2:
            kinds[re.escape(fx.canonical_module("/".join(path)))] = f"depthwise:{module.out_features // groups}"
    return list(order), kinds


def _modules(model):
    from flax import nnx

    for path, value in nnx.iter_graph(model):
        if isinstance(value, nnx.Module):
            yield tuple(str(k) for k in path), value
