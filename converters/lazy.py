"""Package faces that import on first use: ``__getattr__`` for a table of public names.

Keeps ``import tensorferry.converters`` free of numpy, h5py and the codecs, so start-up stays cheap
and the verification workers can import parts of the package in a Python that has only numpy.

>>> getattr_, _ = exports("tensorferry.converters", {"FRAMEWORKS": "constants"})
>>> getattr_("FRAMEWORKS")
('pt', 'tf', 'flax')
"""
from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def exports(package: str, names: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for PACKAGE, where ``names`` maps a public name to its submodule."""

    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{names[name]}"), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(names))

    return __getattr__, __dir__
