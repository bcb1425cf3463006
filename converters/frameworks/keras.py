"""Keras 2 (tf_keras): load a ``tf_model.h5`` into a built model by weight name, as transformers does.

>>> import tempfile; from tensorferry.converters import convert
>>> from tensorferry.fixtures import cnn
>>> out = tempfile.mkdtemp(); _ = convert("fixtures/checkpoints/cnn", out, to=["tf"])
>>> load_weights(cnn.keras_model(cnn.CONFIG), out)
{'missing': [], 'unexpected': []}
"""
from __future__ import annotations

import tf_keras

from ..checkpoint import open_source
from ..errors import InputError


def load_weights(model: tf_keras.Model, path: str, strict: bool = True) -> dict[str, list[str]]:
    """Load PATH's TF weights into MODEL by weight name; ``{"missing": [...], "unexpected": [...]}``.

    Keras' own ``load_weights`` matches by position, which needs the model's creation order;
    names are what the file and the model share.  When ``strict``, raises ``InputError`` if
    either list is non-empty; a shape mismatch always raises.
    """
    source = open_source(path, "tf")
    saved = {n.split("/", 1)[-1]: n for n in source.infos}
    used, missing, values = set(), [], []
    for w in model.weights:
        key = w.name.removesuffix(":0").split("/", 1)[-1]
        if key not in saved:
            missing.append(w.name)
            continue
        arr = source.load(saved[key])
        if tuple(arr.shape) != tuple(w.shape):
            raise InputError(path, f"{saved[key]} has shape {tuple(arr.shape)}, the model's {w.name} has {tuple(w.shape)}")
        values.append((w, arr))
        used.add(key)
    report = {"missing": missing, "unexpected": [saved[k] for k in saved if k not in used]}
    if strict and (report["missing"] or report["unexpected"]):
        raise InputError(path, f"does not match the model: missing {report['missing'][:5]}, unexpected {report['unexpected'][:5]}")
    for w, arr in values:
        w.assign(arr)
    return report
