"""The weights level: every variant file read back, mapped to canonical and compared tensor by tensor.

Needs no framework: the converter's own readers and plan do the mapping.

>>> from tensorferry.converters.checkpoint import open_source
>>> import tempfile; from tensorferry.converters import convert
>>> out = tempfile.mkdtemp(); _ = convert("fixtures/checkpoints/cnn", out, to=["tf"])
>>> check = verify_weights(open_source(out, "tf"), open_source("fixtures/checkpoints/cnn"))
>>> check.passed, check.brief()
(True, '18/18 bit-exact')
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .. import dtypes
from ..checkpoint import Source, open_source
from ..constants import EXTRA
from ..pipeline import Producer, plan_for
from .report import TensorCheck, WeightsCheck


class Canonical:
    """A source's tensors as canonical (PyTorch-layout) tensors, computed lazily by the converter.

    >>> c = Canonical(open_source("fixtures/checkpoints/cnn"))
    >>> c.specs["conv.weight"][0], c.load("conv.weight").shape
    ((8, 3, 3, 3), (8, 3, 3, 3))
    """

    def __init__(self, source: Source, **planning) -> None:
        self.source = source
        self.plan = plan_for(source, ["pt"], **planning)
        self.specs = self.plan.canonical_specs
        # The canonical name's native origin names the culprit in the variant's own terms.
        self.native = {n: ", ".join(m.sources) for m in self.plan.canonical for n, _, _ in m.targets}
        # Tensors rebuilt from config.json (a transformers map's ``computed`` specs): no file holds them.
        self.computed = {n for m in self.plan.canonical if not m.sources for n, _, _ in m.targets}
        self._producer = Producer(source, self.plan.canonical)

    def load(self, name: str) -> np.ndarray:
        return np.asarray(self._producer.canonical_tensor(name))

    def __iter__(self) -> Iterator[tuple[str, np.ndarray]]:
        for name in self.specs:
            yield name, self.load(name)


def iter_canonical(source: Source | str | Path) -> Iterator[tuple[str, np.ndarray]]:
    """(canonical name, tensor) for every tensor of SOURCE, one at a time.

    >>> dict(iter_canonical("fixtures/checkpoints/cnn"))["conv.weight"].shape
    (8, 3, 3, 3)
    """
    yield from Canonical(source if isinstance(source, Source) else open_source(source))


def verify_weights(variant: Source, reference: Source, dtype: str | None = None, **planning) -> WeightsCheck:
    """Compare one variant with the reference, tensor by tensor, in canonical layout.

    ``dtype``: the ``--dtype`` the conversion used; without it a cast is accepted when every
    floating tensor was cast to one dtype and matches ``reference.astype(dtype)`` bit for bit.
    ``planning``: what the conversion was told about the tensors (``kinds``, ``layout_map``).
    A reference that cannot be planned is bad input (raised); a variant that cannot is a failure.
    """
    fw = variant.framework
    check = WeightsCheck(fw, [f.name for f in variant.files])
    ref = Canonical(reference, **planning)
    expected = _expected_in(reference, fw, **planning)
    try:
        var = Canonical(variant, **planning)
    except Exception as e:  # noqa: BLE001 - an unreadable or unmappable file is a failed variant, not a crash
        check.error = f"cannot map {', '.join(check.files)} to canonical: {type(e).__name__}: {e}"
        return check
    want = dtypes.from_name(dtype, "--dtype") if dtype else None
    casts: set[str] = set()
    for name, (shape, dt) in ref.specs.items():
        native = expected.get(name)
        if native is None:
            check.tensors.append(TensorCheck(name, "not_carried", detail=f"{fw} files do not hold it (by the converter's plan)"))
            continue
        if name not in var.specs:
            side = native.startswith(EXTRA + "/")
            check.tensors.append(TensorCheck(name, "not_carried" if side else "missing", native=native,
                                             detail="side data not written (--no-extras)" if side else "not in the file"))
            continue
        vshape, vdt = var.specs[name]
        where = var.native.get(name, native)
        if tuple(vshape) != tuple(shape):
            check.tensors.append(TensorCheck(name, "shape", native=where, detail=f"{tuple(vshape)} instead of {tuple(shape)}"))
            continue
        a, b = ref.load(name), var.load(name)
        status, detail = "exact", ""
        if vdt != dt:
            if not (dtypes.is_float(vdt) and dtypes.is_float(dt)) or (want is not None and vdt != want):
                check.tensors.append(TensorCheck(name, "dtype", native=where, detail=f"{vdt.name} instead of {(want or dt).name}"))
                continue
            a, status, detail = a.astype(vdt), "cast", f"{dt.name} → {vdt.name}"
            casts.add(detail)
        elif want is not None and dtypes.is_float(dt) and dt != want:
            check.tensors.append(TensorCheck(name, "dtype", native=where, detail=f"{vdt.name}, not cast to {want.name}"))
            continue
        if not dtypes.same_bits(a, b):
            delta = np.abs(a.astype(np.float64) - b.astype(np.float64))
            worst = np.unravel_index(int(np.nanargmax(delta)), delta.shape) if delta.size else ()
            check.tensors.append(TensorCheck(name, "mismatch", float(np.nanmax(delta)) if delta.size else 0.0, native=where,
                                             detail=f"{int((a != b).sum())} of {a.size} values differ, worst at {tuple(int(i) for i in worst)}"))
            continue
        check.tensors.append(TensorCheck(name, status, 0.0, native=where, detail=detail))
    for name in sorted(var.specs.keys() - ref.specs.keys()):
        if name in var.computed:  # e.g. Marian's sinusoidal table, which transformers' own PyTorch save leaves out
            check.tensors.append(TensorCheck(name, "not_carried", detail=f"not in the reference; rebuilt from config.json when {fw} is read"))
            continue
        check.tensors.append(TensorCheck(name, "unexpected", native=var.native.get(name, ""), detail="not in the reference"))
    if len(casts) > 1:
        check.error = f"floating tensors were cast to several dtypes: {sorted(casts)}"
    check.cast = next(iter(casts)) if len(casts) == 1 else None
    for alias, target in reference.ties.items():  # an alias is no tensor of its own: the file must still say it is tied
        if target in expected and variant.ties.get(alias) != target:
            check.tensors.append(TensorCheck(alias, "tie", native=alias, detail=f"no longer tied to {target}"))
    return check


def _expected_in(reference: Source, fw: str, **planning) -> dict[str, str]:
    """Canonical name → the native name it gets in FW, for every tensor the converter writes there."""
    plan = plan_for(reference, [fw], **planning)
    out: dict[str, str] = {}
    for move, _ in plan.targets[fw]:
        natives = [n for n, _, _ in move.targets]
        for src in move.sources:
            out.setdefault(src, natives[0] if len(natives) == 1 else ", ".join(natives))
    return out


