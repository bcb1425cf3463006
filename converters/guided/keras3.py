"""A built Keras 3 model as slots, and the ``model.weights.h5`` its own ``load_weights`` reads.

Keras 3's loader (``saving_lib._load_state``) walks the model's saveables and reads each one's
variables from ``<path>/vars/<i>`` by number; names are not read.  The paths and numbers come from
Keras' own walk (``_save_state``) run against a store that records instead of writing: the same
code that writes ``model.save_weights``, so the layout is exactly the one the loader expects
(``layers/<class_snake>_N`` in Functional models, attribute names in subclassed ones, nested
``cell`` / ``forward_layer`` groups, trainable variables first).  No tensor data is touched.

>>> import keras                                                    # doctest: +SKIP
>>> m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, name="fc")])  # doctest: +SKIP
>>> [(s.label, [v.name for v in s.vars]) for s in slots(m)]           # doctest: +SKIP
[('fc', ['layers/dense/vars/0', 'layers/dense/vars/1'])]
"""
from __future__ import annotations

from dataclasses import dataclass

from ..layouts import keras3_names as names_
from ..layouts import tf
from .keras import keras_class, layer_slot
from .structure import Slot, Var, leaf_key


def is_keras3(model: object) -> bool:
    """Whether MODEL is a Keras 3 (``keras`` package) object, not a tf_keras one.

    >>> is_keras3(object())
    False
    """
    return any(c.__module__.split(".")[0] == "keras" for c in type(model).__mro__)


@dataclass
class H5Layout:
    """What ``model.weights.h5`` holds: every group ``make`` created (path, attributes) in Keras' order,
    and every dataset path with the variable it stores."""

    groups: list[tuple[str, dict]]
    datasets: list[tuple[str, object]]
    model: object = None  # the model itself, which verification loads the file into
    made_at: list[int] | None = None  # per group: how many datasets Keras had written when it made it (sharding)

    @property
    def names(self) -> dict[str, str]:
        return {path: attrs.get("name", "") for path, attrs in self.groups}


def record(model) -> H5Layout:
    """Run Keras' own save walk against a recording store: the file's groups and datasets, no data."""
    from keras.src.saving import saving_lib

    class Recorder(saving_lib.H5IOStore):  # _save_state accepts only its own store classes
        def __init__(self) -> None:  # no file: nothing is opened or written
            self.groups: list[tuple[str, dict]] = []
            self.datasets: list[tuple[str, object]] = []
            self.made_at: list[int] = []
            self.at = ""

        def __bool__(self) -> bool:
            return True

        def make(self, path, metadata=None):
            self.at = path
            if metadata:  # Keras creates a group at once only when it has attributes
                self.groups.append((path, dict(metadata)))
                self.made_at.append(len(self.datasets))
            return self

        def __setitem__(self, key, value) -> None:
            if not any(p == self.at for p, _ in self.groups):
                self.groups.append((self.at, {}))
                self.made_at.append(len(self.datasets))
            self.datasets.append((f"{self.at}/vars/{key}" if self.at else f"vars/{key}", value))

    if not getattr(model, "built", False) or not model.weights:
        raise ValueError("the Keras model has no variables yet: build it (call it once on an input) in the factory")
    store = Recorder()
    saving_lib._save_state(model, weights_store=store, assets_store=None, inner_path="", visited_saveables=set())
    for path, value in store.datasets:
        if not hasattr(value, "path") or not hasattr(value, "trainable"):
            raise ValueError(f"{path}: the layer saves a computed value, not a variable (a quantized or LoRA layer?); "
                             "tensorferry writes only layers that save their variables")
    return H5Layout(store.groups, store.datasets, model, store.made_at)


def slots(model) -> list[Slot]:
    """Every weighted layer of MODEL (nested layers walked in tracking order) and its lone variables."""
    h5 = record(model)
    where = {id(v): path for path, v in h5.datasets}
    group_names = h5.names
    trainable = {id(w) for w in model.trainable_weights}
    out: list[Slot] = []
    seen: set[int] = set()

    def var(w, leaf: str) -> Var:
        return Var(where[id(w)], leaf, tuple(int(d) for d in w.shape), _dtype(w), "params" if id(w) in trainable else "batch_stats")

    def module(w, leaf: str) -> str:
        native = names_.native_name(where[id(w)], group_names, leaf.rsplit("/", 1)[-1])
        return tf.canonical_module(tf.split_native(native)[0])

    def lone(weights) -> None:
        for w in weights:
            if id(w) not in seen and id(w) in where:
                seen.add(id(w))
                out.append(Slot(w.path, "variable", frozenset({"param", "buffer"}), [var(w, "")], (len(out),), True, module(w, w.name)))

    def visit(layer) -> None:
        cls = keras_class(layer)
        weights = [w for w in layer.weights if id(w) not in seen and id(w) in where]
        if cls and weights:
            seen.update(id(w) for w in weights)
            leaves = [_leaf(w, layer, cls) for w in weights]
            out.append(layer_slot(layer, cls, [var(w, leaf) for w, leaf in zip(weights, leaves)], len(out), module(weights[0], leaves[0])))
            return
        lone(list(layer._trainable_variables) + list(layer._non_trainable_variables))
        for child in layer._flatten_layers(include_self=False, recursive=False):
            visit(child)

    for layer in model._flatten_layers(include_self=False, recursive=False):
        visit(layer)
    lone(list(model._trainable_variables) + list(model._non_trainable_variables))
    missing = [p for p, v in h5.datasets if id(v) not in seen]
    if missing:
        raise ValueError(f"variables saved outside any layer tensorferry walks: {', '.join(missing[:4])}")
    return out


def native_names(model) -> dict[str, str]:
    """Dataset path → Keras-2 style weight name, leaves from the model's own variables (for reading)."""
    by_path = {v.name: v.leaf or s.label.rsplit("/", 1)[-1] for s in slots(model) for v in s.vars}
    group_names = record(model).names
    return {path: names_.native_name(path, group_names, (leaf or "").rsplit("/", 1)[-1] or None) for path, leaf in by_path.items()}


def _dtype(w) -> str:
    return str(getattr(w.dtype, "name", w.dtype))


def _leaf(w, layer, cls: str) -> str:
    parts = w.path.split("/")
    if layer.name in parts:
        rel = parts[len(parts) - parts[::-1].index(layer.name):]
    else:
        rel = parts[-{"LSTM": 2, "GRU": 2, "Bidirectional": 3}.get(cls, 1):]
    rel[-1] = names_.RENAMED.get(cls, {}).get(rel[-1], rel[-1])
    return leaf_key("/".join(rel))
