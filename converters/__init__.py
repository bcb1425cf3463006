"""The converter graph: PyTorch, TensorFlow and Flax layouts through canonical safetensors.

Names are imported on first use (``lazy``), so ``import tensorferry.converters`` costs nothing.

>>> import tempfile
>>> from tensorferry.converters import convert, verify_dir
>>> out = tempfile.mkdtemp()
>>> sorted(convert("fixtures/checkpoints/cnn", out, to=["tf", "flax"]).outputs)
['flax', 'tf']
>>> verify_dir(out, reference="fixtures/checkpoints/cnn", functional=False, report_dir=False).passed
True
"""
from __future__ import annotations

from .lazy import exports

# public name → the submodule that defines it
_EXPORTS = {
    "convert": "pipeline", "plan_for": "pipeline", "ConvertResult": "pipeline", "parse_size": "pipeline",
    "open_source": "checkpoint", "Source": "checkpoint",
    "verify_dir": "verify.run", "Verification": "verify.report",
    "parse_frameworks": "constants", "FRAMEWORKS": "constants",
    "TensorferryError": "errors", "InputError": "errors", "LayoutError": "errors",
    "VerificationError": "errors", "HubError": "errors",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = exports(__name__, _EXPORTS)
