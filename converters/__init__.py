"""The converter graph: PyTorch, TensorFlow and Flax layouts through canonical safetensors.

>>> from tensorferry.converters import convert
>>> convert("fixtures/checkpoints/cnn", "out", to=["tf", "flax"])   # doctest: +SKIP
"""
from .convert import ConvertResult, convert, plan_for
from .checkpoint import open_source
from .errors import InputError, LayoutError, TensorferryError, VerificationError

__all__ = ["convert", "plan_for", "open_source", "ConvertResult", "TensorferryError", "InputError", "LayoutError", "VerificationError"]
