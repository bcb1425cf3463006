"""An optax state in a training checkpoint: ``flax.serialization.to_bytes`` (msgpack, no pickle).

optax states are trees of named tuples (``ScaleByAdamState(count, mu, nu)``…): msgpack keeps their
leaves and field names, and ``from_bytes`` puts them back into a template of the same structure —
``tx.init(params)`` of a fresh run.  Arrays are immutable, so restoring returns the new state.

>>> import tempfile, jax.numpy as jnp, optax
>>> from pathlib import Path
>>> tx, params, folder = optax.adam(0.1), {"w": jnp.ones(2)}, Path(tempfile.mkdtemp())
>>> _, state = tx.update({"w": jnp.ones(2)}, tx.init(params), params)
>>> record = save(None, state, folder)
>>> int(restore(None, tx.init(params), folder, record)[0].count)
1
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from tensorferry.converters.constants import CHECKPOINT_TREE
from tensorferry.converters.errors import InputError

from .tree import read_table


def save(model: Any, optimizer: Any, folder: Path) -> dict:
    """Write the optax state OPTIMIZER to FOLDER's ``optimizer.msgpack``; returns its JSON record."""
    from flax import serialization

    if optimizer is None:
        raise InputError("optimizer", "give the optax state (on_step(model, step, optimizer=opt_state))")
    try:
        data = serialization.to_bytes(optimizer)
    except Exception as e:  # noqa: BLE001 - flax raises plain errors for leaves msgpack cannot hold
        raise InputError("optimizer", f"the optax state cannot be saved safely: {e}") from None
    (folder / Path(CHECKPOINT_TREE).name).write_bytes(data)
    return {"class": type(optimizer).__name__}


def restore(model: Any, optimizer: Any, folder: Path, record: dict) -> Any:
    """The saved optax state, in the structure of OPTIMIZER (``tx.init(params)`` of the fresh run)."""
    import jax
    import jax.numpy as jnp
    from flax import serialization

    if optimizer is None:
        raise InputError("optimizer", "give a template optax state (tx.init(params)) to restore into")
    path = folder / Path(CHECKPOINT_TREE).name
    saved = read_table(path, lambda p: serialization.msgpack_restore(Path(p).read_bytes()))  # damaged: typed, named
    try:
        state = serialization.from_state_dict(optimizer, saved)
    except (ValueError, KeyError, TypeError, AttributeError) as e:  # another optimizer's tree
        raise InputError(path, f"the optax state does not fit this optimizer's: {e}") from None
    return jax.tree_util.tree_map(jnp.asarray, state)


def load_weights(model: Any, folder: Path) -> Any:
    """The module (bound or not) bound to the repo's own weights (``flax_model.msgpack``)."""
    import jax

    if getattr(model, "scope", None) is not None:
        module, variables = model.unbind()
    else:
        module = model
        dummy = getattr(module, "dummy_inputs", None)
        if dummy is None:
            raise InputError(type(model).__name__, "pass the module bound to variables, or give its class `dummy_inputs`")
        variables = jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), dummy() if callable(dummy) else dummy))
    from tensorferry.publish.mixins.flax import plain

    return type(module)._load_weights((module, plain(variables)), folder)
