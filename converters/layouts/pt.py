"""PyTorch: the canonical layout, ``model.safetensors`` (and read-only ``pytorch_model.bin``).

Canonical names and axis orders are PyTorch's own, so every table row is the identity.

>>> LAYOUT.native_name("encoder.layer.0.query", "weight")
'encoder.layer.0.query.weight'
"""
from __future__ import annotations

from ..constants import EXTRA
from ..kinds import GATES, KINDS
from .base import BUFFERS, STATS, Layout, Leaf, Recurrent

NAME = "pt"
CAN_HOLD = None  # safetensors holds every dtype tensorferry reads
WHY_NOT = ""

_COLLECTION = {"running_mean": STATS, "running_var": STATS}
LEAVES: dict[str, list[Leaf]] = {
    kind: [Leaf(leaf, leaf, collection=_COLLECTION.get(leaf, "params")) for leaf in leaves]
    for kind, leaves in KINDS.items() if leaves and kind not in GATES
}
LEAVES["param"] = [Leaf("", "")]
LEAVES["buffer"] = [Leaf("", "", collection=BUFFERS)]


def _as_is(specs: dict) -> list:
    return [(leaf, shape, dt) for leaf, (shape, dt) in specs.items()]


# Recurrent modules keep every layer's and direction's leaves as they are.
_SAME = Recurrent(_as_is, dict, lambda n: {k: v for k, v in n.items() if not k.startswith(EXTRA + "/")}, _as_is, "as is")
LAYOUT = Layout(NAME, LEAVES, {kind: _SAME for kind in GATES}, sep=".")
