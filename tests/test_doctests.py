"""The examples in the converter's docstrings run and say what they claim."""
from __future__ import annotations

import doctest
import importlib

import pytest

# Modules whose docstrings carry runnable examples (the others' examples need real checkpoints).
MODULES = ["ops", "dtypes", "kinds", "moves", "layout_maps", "pytorch", "tensorflow", "flax", "convert", "cli",
           "formats", "formats.safetensors_file", "formats.msgpack_file", "errors"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, monkeypatch):
    monkeypatch.chdir(__import__("pathlib").Path(__file__).parent.parent)
    module = importlib.import_module(f"tensorferry.converters.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
