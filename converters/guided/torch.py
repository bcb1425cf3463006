"""A ``torch.nn.Module`` as slots: the state dict its own ``load_state_dict(sd, strict=True)`` reads.

Submodules of a known class (``kinds.TORCH_CLASSES``, weight-normed ones included) are slots in
``named_modules`` order; every other module contributes its direct parameters and persistent
buffers one by one.  A tied parameter (one tensor under two names) is filled once and copied to
its alias, so strict loading finds every key.

>>> import torch
>>> model = torch.nn.Sequential(torch.nn.Embedding(5, 3), torch.nn.Linear(3, 5))
>>> model[1].weight = model[0].weight  # tied
>>> [(s.label, s.cls) for s in slots(model)], aliases(model)
([('0', 'nn.Embedding'), ('1.bias', 'parameter')], {'1.weight': '0.weight'})
"""
from __future__ import annotations

from .. import kinds
from .structure import Slot, Var, cell_sig

CLS_KINDS = {"conv": {"conv"}, "depthwise": {"conv", "depthwise"}}


def aliases(model) -> dict[str, str]:
    """Tied names: alias → the first name of the same tensor in the state dict."""
    first: dict[int, str] = {}
    out = {}
    for name, tensor in model.state_dict(keep_vars=True).items():
        if id(tensor) in first:
            out[name] = first[id(tensor)]
        else:
            first[id(tensor)] = name
    return out


def slots(model) -> list[Slot]:
    """MODEL's layers and lone tensors in module order (tied aliases left out: see ``aliases``)."""
    state = model.state_dict(keep_vars=True)
    alias = aliases(model)
    params = dict(model.named_parameters())
    out: list[Slot] = []
    claimed: set[str] = set()
    for index, (name, module) in enumerate(model.named_modules()):
        prefix = f"{name}." if name else ""
        if any(prefix.startswith(c) for c in claimed):
            continue
        kind = kinds.torch_kind(module)
        mine = [n for n in state if n.startswith(prefix) and (kind or "." not in n[len(prefix):])]
        if not mine:
            continue
        variables = [_var(n, n[len(prefix):], state[n], alias.get(n)) for n in mine]
        if kind and not any(v.alias_of for v in variables):
            claimed.add(prefix)
            out.append(_slot(name, type(module).__name__, kind.split(":")[0], variables, index))
            continue
        for v in variables:
            if "." not in v.leaf and v.alias_of is None:
                v.leaf = ""
                out.append(Slot(v.name, "parameter" if v.name in params else "buffer",
                                frozenset({"param", "buffer"}), [v], (index, len(out)), True, v.name))
        if kind:
            claimed.add(prefix)
    return out


def _var(name: str, leaf: str, tensor, alias_of: str | None) -> Var:
    return Var(name, leaf, tuple(tensor.shape), str(tensor.dtype).removeprefix("torch."), alias_of=alias_of)


def _slot(name: str, cls: str, kind: str, variables: list[Var], index: int) -> Slot:
    slot = Slot(name, f"nn.{cls}", frozenset(CLS_KINDS.get(kind, {kind})), variables, (index,), True, name)
    if kind in kinds.GATES:
        leaves = {v.leaf: (v.shape, v.dtype) for v in variables}
        shape = kinds.rnn_shape(leaves, kinds.GATES[kind])
        slot.cells = shape.cells()
        for k, d in slot.cells:
            cell = {f"{base}_l0": leaves[f"{base}_l{k}{d}"] for base in kinds.RNN_BASES if f"{base}_l{k}{d}" in leaves}
            slot.cell_sigs.append(cell_sig(kind, cell) + (d,))
    return slot
