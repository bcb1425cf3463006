"""``TorchHubMixin``: ``class Net(torch.nn.Module, TorchHubMixin)`` saves, pushes and loads every variant.

Its own weights are the state dict in ``model.safetensors``, sharded past ``max_shard_size`` as
transformers shards (``model-0000k-of-0000n.safetensors`` + ``model.safetensors.index.json``),
tied parameters stored once with a tie record.  ``from_pretrained`` returns the module in eval
mode; a repo pushed from a Keras or Flax twin loads through model-guided conversion.

>>> import os, tempfile, torch
>>> class Tiny(torch.nn.Module, TorchHubMixin, license="mit"):
...     def __init__(self, width: int = 3):
...         super().__init__()
...         self.fc = torch.nn.Linear(width, 2)
>>> folder = tempfile.mkdtemp()
>>> Tiny(width=4).save_pretrained(folder, frameworks=["pt", "flax"])
>>> sorted(os.listdir(folder))
['README.md', 'config.json', 'flax_model.msgpack', 'model.safetensors']
>>> Tiny.from_pretrained(folder).fc.in_features
4
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tensorferry.converters.constants import FILES, TIES_KEY

from .base import FrameworkHubMixin


class TorchHubMixin(FrameworkHubMixin):
    """huggingface_hub's ``ModelHubMixin`` for ``torch.nn.Module`` subclasses, writing every framework's variant."""

    framework = "pt"

    def __init_subclass__(cls, *args: Any, tags: list[str] | None = None, **kwargs: Any) -> None:
        kwargs["tags"] = [*(tags or []), "pytorch_model_hub_mixin"]
        super().__init_subclass__(*args, **kwargs)

    def _structure(self) -> Any:
        return self

    def _write_weights(self, folder: Path, max_shard_size: str | int) -> None:
        from safetensors.torch import save_file

        from tensorferry.converters.pipeline import parse_size, shard

        state, ties = _state(self)
        groups = [[n for n, _ in group] for group in
                  shard(list(state.items()), lambda item: item[1].numel() * item[1].element_size(), parse_size(max_shard_size))]
        meta = {"format": "pt", **({TIES_KEY: json.dumps(ties)} if ties else {})}
        if len(groups) == 1:
            save_file(state, str(folder / FILES["pt"].single), metadata=meta)
            return
        weight_map = {}
        for i, names in enumerate(groups, 1):
            name = FILES["pt"].shard(i, len(groups))
            save_file({n: state[n] for n in names}, str(folder / name), metadata=meta)
            weight_map.update({n: name for n in names})
        total = sum(t.numel() * t.element_size() for t in state.values())
        index = {"metadata": {"total_size": total, **({TIES_KEY: json.dumps(ties)} if ties else {})}, "weight_map": weight_map}
        (folder / FILES["pt"].index).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")

    @classmethod
    def _build(cls, **model_kwargs: Any) -> Any:
        return cls(**model_kwargs)

    @classmethod
    def _loads_directly(cls, model: Any, folder: Path) -> bool:
        from safetensors import safe_open

        files = [folder / n for n in _pt_files(folder)]
        shapes = {}
        for f in files:
            with safe_open(str(f), "pt") as fh:
                shapes.update({k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()})
        state, _ = _state(model)
        return bool(files) and shapes == {n: tuple(t.shape) for n, t in state.items()}

    @classmethod
    def _load_weights(cls, model: Any, folder: Path) -> Any:
        from safetensors.torch import load_file

        state = {}
        for name in _pt_files(folder):
            state.update(load_file(str(folder / name)))
        _, ties = _state(model)
        for alias, first in ties.items():
            state.setdefault(alias, state[first])
        model.load_state_dict(state, strict=True)
        return model.eval()


def _pt_files(folder: Path) -> list[str]:
    index = folder / FILES["pt"].index
    if index.exists():
        return sorted(set(json.loads(index.read_text())["weight_map"].values()))
    return [FILES["pt"].single] if (folder / FILES["pt"].single).exists() else []


def _state(model: Any) -> tuple[dict, dict[str, str]]:
    """The state dict with each shared tensor once (contiguous), and {alias: first name} for the others."""
    state, ties, seen = {}, {}, {}
    for name, t in model.state_dict().items():
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.dtype) if t.numel() else None
        if key is not None and key in seen:
            ties[name] = seen[key]
            continue
        if key is not None:
            seen[key] = name
        state[name] = t.detach().contiguous()
    return state, ties
