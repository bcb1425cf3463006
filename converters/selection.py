"""What a checkpoint contributes: the state dict inside a training checkpoint, its prefixes, dropped tensors.

Research code rarely saves a bare state dict: ``torch.save({"step": …, "model_state": sd,
"optimizer_state": …})``, Lightning's ``.ckpt`` (``state_dict`` with a ``model.`` prefix), EMA copies
next to the model, ``DataParallel``/DDP (``module.``) and ``torch.compile`` (``_orig_mod.``)
prefixes.  These functions work on plain nested mappings (any tensor type), so they are tested
without torch; the pickle reader calls them after ``torch.load(weights_only=True)``.

>>> import numpy as np
>>> ckpt = {"step": 7, "model_state": {"module.fc.weight": np.zeros((2, 2))}, "optimizer_state": {"state": {0: {}}}}
>>> sd, found = find_state_dict(ckpt, is_tensor=lambda v: isinstance(v, np.ndarray))
>>> list(sd), found.key, found.stripped, found.ignored
(['fc.weight'], 'model_state', ['module.'], ['step (int)', 'optimizer_state (dict)'])
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import InputError

# Wrappers whose prefix every key carries: DataParallel/DDP, torch.compile (in any nesting).
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
# Entries that hold training state, never the model: not searched (a per-parameter optimizer
# state is itself a mapping of tensors).
NOT_MODEL = re.compile(r"optim|sched|scaler|callbacks?$|loops?$|rng|random", re.IGNORECASE)
# Keys that mark a PyTorch Lightning checkpoint, whose state dict carries the LightningModule's
# attribute (``model.``) in front of every name.
LIGHTNING_KEYS = ("pytorch-lightning_version", "lightning_version")


@dataclass
class Found:
    """Where the state dict was and what was left out: the report a conversion prints."""

    key: str | None = None  # dotted path of the chosen mapping; None for a bare state dict
    ignored: list[str] = field(default_factory=list)  # "step (int)", "ema (12 tensors)"
    stripped: list[str] = field(default_factory=list)  # prefixes removed from every name

    def to_json(self) -> dict:
        return {"key": self.key, "ignored": self.ignored, "stripped": self.stripped}

    def lines(self) -> list[str]:
        """Human-readable report lines (empty for a plain state dict)."""
        out = []
        if self.key:
            out.append(f"state dict taken from {self.key!r}")
        if self.ignored:
            out.append("ignored: " + ", ".join(self.ignored))
        if self.stripped:
            out.append("stripped prefix " + " + ".join(repr(p) for p in self.stripped))
        return out


def find_state_dict(obj: Any, key: str | None = None, *, is_tensor: Callable[[Any], bool],
                    where: object = "checkpoint") -> tuple[dict[str, Any], Found]:
    """The one mapping of names to tensors inside OBJ, with its prefixes stripped.

    ``key`` (``"state_dict"``, ``"model.ema"``) says where to look; otherwise exactly one nested
    mapping of tensors must qualify: several (``model`` and ``ema``) is an ``InputError`` listing them.

    >>> import numpy as np
    >>> t = np.zeros(1)
    >>> find_state_dict({"model": {"w": t}, "ema": {"w": t}}, is_tensor=lambda v: v is t)
    Traceback (most recent call last):
    ...
    tensorferry.converters.errors.InputError: checkpoint: holds several state dicts: 'model' (1 tensors), 'ema' (1 tensors); choose one with --key (e.g. --key model)
    >>> find_state_dict({"model": {"w": t}, "ema": {"w": t}}, "ema", is_tensor=lambda v: v is t)[1].ignored
    ['model (1 tensors)']
    """
    found = Found()
    root, path = obj, []
    if key:
        root, path = _follow(obj, key, where, found, is_tensor)
    if _is_state_dict(root, is_tensor):
        chosen, at = root, path
    else:
        if not isinstance(root, Mapping):
            raise InputError(where, f"not a state dict: {'--key ' + key + ' points at' if key else 'the file holds'} "
                                    f"{_describe(root, is_tensor)}, not a mapping of names to tensors")
        candidates = list(_candidates(root, path, is_tensor))
        if not candidates:
            tensors = {k: v for k, v in root.items() if isinstance(k, str) and is_tensor(v)}  # names, not numbers
            if not tensors:
                raise InputError(where, "not a state dict: expected a mapping of names to tensors, and no entry holds one"
                                        + (f" (entries: {', '.join(map(str, list(root)[:12]))})" if root else ""))
            chosen, at = tensors, path
        elif len(candidates) > 1:
            listed = ", ".join(f"{'.'.join(p)!r} ({len(m)} tensors)" for p, m in candidates)
            raise InputError(where, f"holds several state dicts: {listed}; choose one with --key (e.g. --key {'.'.join(candidates[0][0])})")
        else:
            at, chosen = candidates[0]
        _report_siblings(root, path, at, found, is_tensor)
    found.key = ".".join(at) or None
    lightning = isinstance(obj, Mapping) and any(k in obj for k in LIGHTNING_KEYS)
    names, found.stripped = strip_prefixes(list(chosen), lightning=lightning)
    return {new: chosen[old] for new, old in names.items()}, found


def strip_prefixes(names: list[str], lightning: bool = False) -> tuple[dict[str, str], list[str]]:
    """``{new name: old name}`` without the wrapper prefixes every name shares, and what was stripped.

    ``lightning`` also strips the one top-level module all names share (the LightningModule's
    attribute holding the network).

    >>> strip_prefixes(["module._orig_mod.fc.weight", "module._orig_mod.fc.bias"])
    ({'fc.weight': 'module._orig_mod.fc.weight', 'fc.bias': 'module._orig_mod.fc.bias'}, ['module.', '_orig_mod.'])
    >>> strip_prefixes(["model.fc.weight", "model.head.bias"], lightning=True)[1]
    ['model.']
    """
    current = {n: n for n in names}
    stripped: list[str] = []
    while current:
        prefix = next((p for p in WRAPPER_PREFIXES if all(n.startswith(p) and len(n) > len(p) for n in current)), None)
        if prefix is None and lightning:
            lightning = False  # the LightningModule's attribute: one level, once
            firsts = {n.split(".", 1)[0] for n in current}
            if len(firsts) == 1 and all("." in n for n in current):
                prefix = firsts.pop() + "."
        if prefix is None:
            break
        current = {n[len(prefix):]: old for n, old in current.items()}
        stripped.append(prefix)
    return current, stripped


def drop_names(names: list[str], patterns: list[str]) -> tuple[list[str], list[str]]:
    """The names any pattern finds (``re.search``) and the patterns that found nothing.

    >>> drop_names(["fc.weight", "aux.weight", "aux.bias"], [r"^aux\\.", "ema"])
    (['aux.weight', 'aux.bias'], ['ema'])
    """
    compiled = []
    for p in patterns:
        try:
            compiled.append(re.compile(p))
        except re.error as e:
            raise InputError("--drop", f"{p!r} is not a regular expression ({e})") from None
    dropped = [n for n in names if any(c.search(n) for c in compiled)]
    unused = [p for p, c in zip(patterns, compiled) if not any(c.search(n) for n in names)]
    return dropped, unused


def _is_state_dict(obj: Any, is_tensor: Callable[[Any], bool]) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(isinstance(k, str) and is_tensor(v) for k, v in obj.items())


def _candidates(node: Mapping, path: list[str], is_tensor, depth: int = 0):
    """Mappings of tensors below NODE (not NODE itself), in file order; training state is not searched."""
    if depth > 6:
        return
    for k, v in node.items():
        if not isinstance(k, str) or not isinstance(v, Mapping) or NOT_MODEL.search(k):
            continue
        if _is_state_dict(v, is_tensor):
            yield [*path, k], v
        elif all(isinstance(kk, str) for kk in v):  # int keys: an optimizer's per-parameter state
            yield from _candidates(v, [*path, k], is_tensor, depth + 1)


def _follow(obj: Any, key: str, where: object, found: Found, is_tensor) -> tuple[Any, list[str]]:
    """Walk a dotted KEY (a key may itself hold dots: the longest that exists wins)."""
    node, path, rest = obj, [], key
    while rest:
        if not isinstance(node, Mapping):
            raise InputError(where, f"--key {key}: {'.'.join(path) or 'the file'} is {_describe(node, is_tensor)}, not a mapping")
        parts = rest.split(".")
        for n in range(len(parts), 0, -1):
            head = ".".join(parts[:n])
            if head in node:
                break
        else:
            keys = ", ".join(repr(k) for k in list(node)[:20])
            raise InputError(where, f"--key {key}: no entry {parts[0]!r} in {'.'.join(path) or 'the file'} (entries: {keys})")
        for k, v in node.items():
            if k != head:
                found.ignored.append(f"{'.'.join([*path, str(k)])} ({_describe(v, is_tensor)})")
        node, path, rest = node[head], [*path, head], ".".join(parts[n:])
    return node, path


def _report_siblings(root: Mapping, base: list[str], at: list[str], found: Found, is_tensor) -> None:
    """Everything under ROOT but off the path to the chosen mapping is reported as ignored."""
    node, path = root, list(base)
    for part in at[len(base):]:
        for k, v in node.items():
            if k != part:
                found.ignored.append(f"{'.'.join([*path, str(k)])} ({_describe(v, is_tensor)})")
        node, path = node[part], [*path, part]
    if not at[len(base):]:  # tensors taken straight from ROOT: its other entries are left out
        found.ignored += [f"{'.'.join([*path, str(k)])} ({_describe(v, is_tensor)})" for k, v in node.items() if not is_tensor(v)]


def _describe(value: Any, is_tensor) -> str:
    if is_tensor(value):
        return "tensor"
    if _is_state_dict(value, is_tensor):
        return f"{len(value)} tensors"
    return type(value).__name__
