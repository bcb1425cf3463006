"""A tf_keras optimizer's state in a training checkpoint: its variables (Adam's iteration count and moments…)
in safetensors, their names and shapes in JSON.

Restoring builds the fresh optimizer over the model's trainable variables — what ``fit`` would do on
its first step — then assigns every variable, checked by count and shape.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from tensorferry.converters.constants import CHECKPOINT_TENSORS
from tensorferry.converters.errors import InputError

from .tree import read_table


def _optimizer(model: Any, optimizer: Any) -> Any:
    optimizer = optimizer if optimizer is not None else getattr(model, "optimizer", None)
    if optimizer is None:
        raise InputError("optimizer", "compile the Keras model with its optimizer first (or pass optimizer=)")
    if not hasattr(optimizer, "build") or not hasattr(optimizer, "iterations"):
        # tf_keras.optimizers.legacy.* build their slots their own way: not supported
        raise InputError("optimizer", f"a {type(optimizer).__name__} from {type(optimizer).__module__}: give a "
                                      "tf_keras.optimizers optimizer (the legacy ones are not supported)")
    return optimizer


def save(model: Any, optimizer: Any, folder: Path) -> dict:
    """Write the optimizer's variables to FOLDER's ``optimizer.safetensors``; returns their JSON record."""
    import numpy as np
    from safetensors.numpy import save_file

    optimizer = _optimizer(model, optimizer)
    variables = list(optimizer.variables)
    save_file({f"{i:05d}": np.asarray(v.numpy()) for i, v in enumerate(variables)}, str(folder / Path(CHECKPOINT_TENSORS).name),
              metadata={"format": "tf"})
    return {"class": type(optimizer).__name__, "config": _plain(optimizer.get_config()),
            "variables": [{"name": v.name, "shape": list(v.shape)} for v in variables]}


def restore(model: Any, optimizer: Any, folder: Path, record: dict) -> Any:
    """Build the optimizer over MODEL's trainable variables and assign the saved values."""
    from safetensors.numpy import load_file

    optimizer = _optimizer(model, optimizer)
    if record.get("class") != type(optimizer).__name__:
        raise InputError(folder, f"holds a {record.get('class')} state, not a {type(optimizer).__name__} one")
    path = folder / Path(CHECKPOINT_TENSORS).name
    values = read_table(path, load_file)
    listed = record.get("variables")
    names = [v.get("name") if isinstance(v, dict) else None for v in listed] if isinstance(listed, list) else []
    if len(names) != len(values) or set(values) != {f"{i:05d}" for i in range(len(values))}:
        raise InputError(path, f"holds {len(values)} tensors, the record lists {len(names)} optimizer variables: "
                               "not the pair the callback wrote")
    optimizer.build(model.trainable_variables)
    variables = list(optimizer.variables)
    if len(values) != len(variables):
        raise InputError(folder, f"holds {len(values)} optimizer variables, this optimizer has {len(variables)}")
    for i, v in enumerate(variables):
        value = values[f"{i:05d}"]
        if tuple(value.shape) != tuple(v.shape):
            raise InputError(path, f"optimizer variable {i} ({names[i]}) has shape "
                                   f"{tuple(value.shape)}, this optimizer's {v.name} {tuple(v.shape)}")
        v.assign(value)
    return optimizer


def load_weights(model: Any, folder: Path) -> Any:
    """MODEL (built first when needed) with the repo's own weights (``tf_model.h5``)."""
    from tensorferry.publish.mixins.keras import ensure_built

    return type(model)._load_weights(ensure_built(model), folder)


def _plain(value: Any) -> Any:
    """The optimizer's config for the record: numpy scalars as numbers, anything else JSON lacks as text."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and getattr(value, "shape", None) == ():
        return value.item()
    return value if isinstance(value, (type(None), bool, int, float, str)) else repr(value)
