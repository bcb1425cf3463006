"""A PyTorch optimizer's state in a training checkpoint: ``state_dict()`` tensors in safetensors, the rest in JSON.

The rest is the param groups (learning rate, betas, flags: numbers, strings, lists) and the state's
structure; ``tree.split`` refuses anything else (a callable in a param group…) with an ``InputError``.
Tensors are copied while they are written, so the optimizer may step on right after ``save`` returns.

>>> import tempfile, torch
>>> from pathlib import Path
>>> net, folder = torch.nn.Linear(2, 1), Path(tempfile.mkdtemp())
>>> opt = torch.optim.Adam(net.parameters(), lr=0.01)
>>> net(torch.ones(1, 2)).sum().backward(); opt.step()
>>> record = save(net, opt, folder)
>>> again = restore(net, torch.optim.Adam(net.parameters()), folder, record)
>>> again.param_groups[0]["lr"], again.state_dict()["state"][0]["step"].item()
(0.01, 1.0)
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from tensorferry.converters.constants import CHECKPOINT_TENSORS
from tensorferry.converters.errors import InputError

from . import tree


def save(model: Any, optimizer: Any, folder: Path) -> dict:
    """Write OPTIMIZER's state to FOLDER's ``optimizer.safetensors``; returns its JSON record."""
    import torch
    from safetensors.torch import save_file

    if not isinstance(optimizer, torch.optim.Optimizer):
        raise InputError("optimizer", f"a {type(optimizer).__name__}, not a torch.optim.Optimizer")
    doc, table = tree.split(optimizer.state_dict(), lambda v: isinstance(v, torch.Tensor))
    # clone: the state's tensors are updated in place by the next step, and safetensors wants them unshared
    save_file({k: t.detach().to("cpu", copy=True).contiguous() for k, t in table.items()},
              str(folder / Path(CHECKPOINT_TENSORS).name), metadata={"format": "pt"})
    return {"class": type(optimizer).__name__, "state": doc}


def restore(model: Any, optimizer: Any, folder: Path, record: dict) -> Any:
    """Load the saved state into OPTIMIZER (built over MODEL's parameters, as in the saved run)."""
    import torch
    from safetensors.torch import load_file

    if not isinstance(optimizer, torch.optim.Optimizer):
        raise InputError("optimizer", "give the torch.optim.Optimizer to resume (built over the model's parameters)")
    if record.get("class") != type(optimizer).__name__:
        raise InputError(folder, f"holds a {record.get('class')} state, not a {type(optimizer).__name__} one")
    path = folder / Path(CHECKPOINT_TENSORS).name
    state = tree.join(record["state"], tree.read_table(path, load_file), str(path))
    try:
        optimizer.load_state_dict(state)
    except (ValueError, KeyError, TypeError) as e:  # another model's optimizer: group sizes differ
        raise InputError(folder, f"the optimizer state does not fit this optimizer: {e}") from None
    return optimizer


def load_weights(model: Any, folder: Path) -> Any:
    """MODEL with the repo's own weights (``model.safetensors``), in the training mode it was in."""
    training = model.training
    type(model)._load_weights(model, folder)
    return model.train(training)
