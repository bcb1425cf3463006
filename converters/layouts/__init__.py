"""Each framework's layout knowledge: names, axis orders, collections, as tables over one machinery.

``base`` holds the machinery (``Leaf`` rows turned into moves both ways); ``pt``, ``tf`` and
``flax`` each hold one ``Layout`` built from such tables, the same few pieces in each.

>>> sorted(LAYOUTS)
['flax', 'pt', 'tf']
>>> LAYOUTS["tf"].native_name("encoder.layer.0.query", "kernel")
'encoder/layer_._0/query/kernel'
"""
from __future__ import annotations

from . import flax, pt, tf
from .base import BUFFERS, PARAMS, STATS, Layout, Leaf, Recurrent

MODULES = {"pt": pt, "tf": tf, "flax": flax}
LAYOUTS: dict[str, Layout] = {name: module.LAYOUT for name, module in MODULES.items()}

__all__ = ["LAYOUTS", "MODULES", "Layout", "Leaf", "Recurrent", "PARAMS", "STATS", "BUFFERS"]
