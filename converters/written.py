"""What a conversion writes, per target: the planned files (``Variant``) and what was written (``Output``)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .formats.digest import FileDigest
from .moves import Move


@dataclass
class Output:
    """One framework's variant as written: file names in order, total bytes, tensors, and each
    weights file's size and sha256 (computed while writing, for the Hub's LFS)."""

    framework: str
    files: list[str]
    bytes: int
    tensors: int
    digests: dict[str, FileDigest] = field(default_factory=dict, repr=False)



@dataclass
class Variant:
    """One target's files as planned: what each file holds, and the order its writer asks for tensors."""

    framework: str
    moves: dict[str, Move]  # target tensor name → the move that makes it
    order: list[str]  # every tensor the writer asks for, in the order it asks (side data first)
    write: Callable[[Callable[[str], np.ndarray], object], Output]  # (produce, atomic outputs) → Output
