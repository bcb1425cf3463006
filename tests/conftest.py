"""Shared helpers: run the CLI in-process, compare checkpoints bit for bit."""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pathlib import Path

import pytest

from tensorferry.converters.checkpoint import open_source
from tensorferry.converters.dtypes import same_bits
from tensorferry.fixtures import FAMILIES, checkpoint_dir


@pytest.fixture
def cli(capsys):
    """Run ``tensorferry ARGS`` in-process; returns (exit code, stdout, stderr)."""
    from tensorferry.publish.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def assert_same_checkpoint(a: str | Path, b: str | Path) -> int:
    """Every tensor of ``a`` equals ``b``'s bit for bit, same names, dtypes and shapes."""
    x, y = open_source(a), open_source(b)
    assert set(x.infos) == set(y.infos), sorted(set(x.infos) ^ set(y.infos))
    for name in x.infos:
        assert same_bits(x.load(name), y.load(name)), name
    return len(x.infos)


FAMILY_NAMES = sorted(FAMILIES)
__all__ = ["assert_same_checkpoint", "checkpoint_dir", "FAMILY_NAMES"]
