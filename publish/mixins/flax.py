"""``FlaxHubMixin``: ``class FNet(flax.linen.Module, FlaxHubMixin)`` saves, pushes and loads every variant.

A linen module holds no weights: save the module bound to its variables
(``FNet(...).bind(variables)``).  Its config is its dataclass fields (``coders`` apply); its own
weights are ``flax.serialization.to_bytes`` in ``flax_model.msgpack`` (the bare ``params`` tree
when that is the only collection, as transformers writes it).  ``from_pretrained`` builds the
module from ``config.json``, takes the variables' shapes from ``module.init`` on ``dummy_inputs``
(abstractly: nothing is computed) and returns ``module.bind(variables)``, callable as ``model(x)``
with ``.variables`` — loaded directly when the file's tree is the module's, else through
model-guided conversion.

>>> flat({"params": {"Dense_0": {"kernel": [1]}}})
{'params/Dense_0/kernel': [1]}
"""
from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path
from typing import Any

from tensorferry.converters.constants import EXTRA, FILES
from tensorferry.converters.errors import InputError

from .base import FrameworkHubMixin, encode_config

SKIPPED_FIELDS = ("parent", "name")  # linen's own fields, not the model's config


def flat(tree: dict, prefix: str = "") -> dict[str, Any]:
    """A nested dict as ``{"a/b/c": leaf}``."""
    out: dict[str, Any] = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) or hasattr(v, "items") and not hasattr(v, "shape"):
            out.update(flat(dict(v), key + "/"))
        else:
            out[key] = v
    return out


class FlaxHubMixin(FrameworkHubMixin):
    """huggingface_hub's ``ModelHubMixin`` for ``flax.linen.Module`` subclasses, writing every framework's variant."""

    framework = "flax"

    def __init_subclass__(cls, *args: Any, tags: list[str] | None = None, **kwargs: Any) -> None:
        kwargs["tags"] = [*(tags or []), "flax"]
        super().__init_subclass__(*args, **kwargs)

    @classmethod
    def _prepare_class(cls) -> None:
        # linen turns the class into a dataclass after ModelHubMixin inspected its __init__: read it again
        params = dict(inspect.signature(cls.__init__).parameters)
        for name in SKIPPED_FIELDS:
            params.pop(name, None)
        cls._hub_mixin_init_parameters = params
        cls._hub_mixin_jsonable_default_values = {
            p.name: cls._encode_arg(p.default) for p in params.values()
            if p.default is not inspect.Parameter.empty and cls._is_jsonable(p.default)}
        super()._prepare_class()

    def _hub_config(self) -> dict:
        """The module's dataclass fields (not linen's ``parent`` and ``name``), encoded like ``__init__`` arguments."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init and f.name not in SKIPPED_FIELDS}
        return encode_config(type(self), values)

    def _write_weights(self, folder: Path, max_shard_size: str | int) -> None:
        from flax import serialization

        try:
            variables = plain(self.variables)
        except Exception:  # noqa: BLE001 - linen raises its own error types for an unbound module
            raise InputError(type(self).__name__, "the Flax module is not bound to variables: save module.bind(variables)") from None
        tree = variables["params"] if set(variables) == {"params"} else variables
        (folder / FILES["flax"].single).write_bytes(serialization.to_bytes(tree))

    @classmethod
    def _build(cls, **model_kwargs: Any) -> Any:
        import jax

        module = cls(**model_kwargs)
        dummy = getattr(module, "dummy_inputs", None)
        if dummy is None:
            raise InputError(cls.__name__, "give the class `dummy_inputs` (an input for module.init) so its variables can be built")
        sample = dummy() if callable(dummy) else dummy
        shapes = jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), sample))
        return module, plain(shapes)

    @classmethod
    def _loads_directly(cls, model: Any, folder: Path) -> bool:
        path = folder / FILES["flax"].single
        if not path.exists():
            return False
        tree = _read(path, model[1])
        want = {k: tuple(v.shape) for k, v in flat(model[1]).items()}
        return {k: tuple(getattr(v, "shape", ())) for k, v in flat(tree).items()} == want

    @classmethod
    def _load_weights(cls, model: Any, folder: Path) -> Any:
        import jax.numpy as jnp

        module, shapes = model
        path = folder / FILES["flax"].single
        want = flat(shapes)
        got = {k: v for k, v in flat(_read(path, shapes)).items() if EXTRA not in k.split("/")}  # side data is no weight
        missing, unexpected = sorted(set(want) - set(got)), sorted(set(got) - set(want))
        if missing or unexpected:
            raise InputError(path, "does not fit the module's variables: " + "; ".join(
                f"{what} {', '.join(keys[:10])}{' …' if len(keys) > 10 else ''}"
                for what, keys in (("missing", missing), ("unexpected", unexpected)) if keys))
        wrong = [f"{k} {tuple(getattr(got[k], 'shape', ()))} (the module's {tuple(want[k].shape)})" for k in want
                 if tuple(getattr(got[k], "shape", ())) != tuple(want[k].shape)]
        if wrong:
            raise InputError(path, "has variables of other shapes than the module's: " + ", ".join(wrong[:10]))
        return module.bind(_unflat({k: jnp.asarray(v) for k, v in got.items()}))

    @classmethod
    def _guide(cls, model: Any) -> Any:
        return model[1]


def plain(tree: Any) -> dict:
    """A variables tree (``FrozenDict``s, any mapping) as nested plain dicts, leaves untouched.

    >>> from types import MappingProxyType
    >>> plain(MappingProxyType({"params": MappingProxyType({"kernel": 1})}))
    {'params': {'kernel': 1}}
    """
    return {k: plain(v) for k, v in tree.items()} if hasattr(tree, "items") else tree


def _read(path: Path, like: dict) -> dict:
    """The file's tree with its collections: a bare tree is the ``params`` collection."""
    from flax import serialization

    tree = serialization.msgpack_restore(path.read_bytes())
    collections = set(tree) - {EXTRA}  # tensorferry's side data is not a collection
    return tree if "params" in tree and collections <= set(like) else {"params": tree}


def _unflat(items: dict[str, Any]) -> dict:
    out: dict = {}
    for key, value in items.items():
        node = out
        *parents, leaf = key.split("/")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out
