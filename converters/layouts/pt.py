"""PyTorch: the canonical layout, ``model.safetensors`` (and read-only ``pytorch_model.bin``).

Canonical names and axis orders are PyTorch's own, so every table row is the identity.

>>> LAYOUT.native_name("encoder.layer.0.query", "weight")
'encoder.layer.0.query.weight'
"""
from __future__ import annotations

from ..kinds import KINDS
from .base import BUFFERS, STATS, Layout, Leaf

NAME = "pt"
CAN_HOLD = None  # safetensors holds every dtype tensorferry reads
WHY_NOT = ""

_COLLECTION = {"running_mean": STATS, "running_var": STATS}
LEAVES: dict[str, list[Leaf]] = {
    kind: [Leaf(leaf, leaf, collection=_COLLECTION.get(leaf, "params")) for leaf in leaves] for kind, leaves in KINDS.items() if leaves
}
LEAVES["param"] = [Leaf("", "")]
LEAVES["buffer"] = [Leaf("", "", collection=BUFFERS)]
LAYOUT = Layout(NAME, LEAVES, {}, sep=".")
