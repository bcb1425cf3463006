"""Verification of converted checkpoints: the weights level, the functional level, the report.

``run.verify_dir`` is the whole run; ``weights`` and ``functional`` the two levels; ``models`` where
models come from; ``worker`` one framework's side, in its own process; ``report`` the result records
and their JSON, Markdown and PNG forms; ``cli`` the ``verify`` command.  Names import on first use,
so the workers can import ``models`` in a Python that has only numpy and one framework.

>>> from tensorferry.converters.verify import tolerance_for
>>> tolerance_for("bfloat16")
(0.01, 0.05, 'bfloat16')
"""
from __future__ import annotations

from ..lazy import exports

_EXPORTS = {
    "verify_dir": "run", "choose_models": "run",
    "verify_weights": "weights", "iter_canonical": "weights", "Canonical": "weights",
    "verify_functional": "functional", "compare_outputs": "functional",
    "Verification": "report", "WeightsCheck": "report", "FunctionalCheck": "report", "TensorCheck": "report",
    "OutputCheck": "report", "tolerance_for": "report",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = exports(__name__, _EXPORTS)
