"""PyTorch: the canonical layout, ``model.safetensors`` (and read-only ``pytorch_model.bin``).

Canonical names and axis orders are PyTorch's own, so every table row is the identity: the
layout knowledge here is which files hold PyTorch weights.

>>> LAYOUT.native_name("encoder.layer.0.query", "weight")
'encoder.layer.0.query.weight'
"""
from __future__ import annotations

from .kinds import KINDS
from .layout import BUFFERS, STATS, Layout, Leaf

NAME = "pt"
FILE = "model.safetensors"
INDEX = "model.safetensors.index.json"
SHARD = "model-{i:05d}-of-{n:05d}.safetensors"
# Read-only names: pickles are never written.
PICKLE_FILE = "pytorch_model.bin"
PICKLE_INDEX = "pytorch_model.bin.index.json"
CAN_HOLD = None  # safetensors holds every dtype tensorferry reads
WHY_NOT = ""

_COLLECTION = {"running_mean": STATS, "running_var": STATS}
LEAVES: dict[str, list[Leaf]] = {
    kind: [Leaf(leaf, leaf, collection=_COLLECTION.get(leaf, "params")) for leaf in leaves] for kind, leaves in KINDS.items() if leaves
}
LEAVES["param"] = [Leaf("", "")]
LEAVES["buffer"] = [Leaf("", "", collection=BUFFERS)]
LAYOUT = Layout(NAME, LEAVES, {}, sep=".")
