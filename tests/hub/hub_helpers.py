"""Small helpers shared by the local Hub tests (imported as a plain module)."""
from __future__ import annotations

import hashlib
import os
import uuid


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def unique(prefix: str = "repo") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
