"""Verifying what ``--model`` wrote for a Keras 3 model or an NNX module, in that framework.

The variant is loaded by the framework's own loader into the given model (Keras 3
``model.load_weights``; Orbax ``StandardCheckpointer().restore(path, nnx.state(model))``), and
every variable it then holds is compared bit for bit with the tensor the plan computes for it
from the source; NNX state that is no weight (RNG keys and counters) must equal the template's.
The model given is the one loaded into: after verification it holds the converted weights.

>>> guided_frameworks(None)
[]
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..checkpoint import Source
from ..constants import KERAS3_WEIGHTS, NNX_DIR
from ..pipeline import Producer
from ..plan import Plan
from .report import TensorCheck, WeightsCheck


def guided_frameworks(plan: Plan | None) -> list[str]:
    """The targets of PLAN written for a Keras 3 model (``tf``) or an NNX module (``flax``)."""
    if plan is None:
        return []
    return [fw for fw, layout in (("tf", plan.keras3), ("flax", plan.nnx)) if layout is not None]


def verify_guided(out: str | Path, source: Source, plan: Plan) -> dict[str, WeightsCheck]:
    """Each Keras 3 / NNX variant in OUT loaded by its own framework and compared with the plan's tensors."""
    out = Path(out)
    producer = Producer(source, plan.canonical)
    by_name = {fw: {n: m for m, _ in plan.targets[fw] for n, _, _ in m.targets} for fw in guided_frameworks(plan)}
    checks: dict[str, WeightsCheck] = {}
    if plan.keras3 is not None:
        checks["tf"] = _check("tf", [KERAS3_WEIGHTS], lambda: _keras3(out / KERAS3_WEIGHTS, plan), by_name["tf"], producer)
    if plan.nnx is not None:
        checks["flax"] = _check("flax", [NNX_DIR + "/"], lambda: _nnx(out / NNX_DIR, plan), by_name["flax"], producer)
    return checks


def _check(fw: str, files: list[str], load, moves: dict, producer: Producer) -> WeightsCheck:
    check = WeightsCheck(fw, files)
    try:
        got, kept = load()
    except Exception as e:  # noqa: BLE001 - whatever the framework's loader raises is the finding
        check.error = f"the framework's own loader failed: {type(e).__name__}: {e}"
        return check
    for name, value in got.items():
        want = np.asarray(producer.run(moves[name], name, producer.canonical_tensor))
        check.tensors.append(_compare(name, value, want))
    for name, (value, want) in kept.items():
        check.tensors.append(_compare(name, value, want, "kept from the template"))
    return check


def _compare(name: str, got: np.ndarray, want: np.ndarray, detail: str = "") -> TensorCheck:
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        return TensorCheck(name, "shape", detail=f"{got.shape} loaded, {want.shape} planned")
    if got.dtype != want.dtype:
        return TensorCheck(name, "dtype", detail=f"{got.dtype} loaded, {want.dtype} planned")
    if got.tobytes() == want.tobytes():
        return TensorCheck(name, "exact", 0.0, detail=detail)
    delta = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64)))) if got.size and got.dtype.kind in "fiu" else None
    return TensorCheck(name, "mismatch", delta, detail=detail)


def _keras3(path: Path, plan: Plan) -> tuple[dict, dict]:
    """Keras 3's ``load_weights`` into the model the plan was made for; dataset path → loaded value."""
    plan.keras3.model.load_weights(str(path))
    return {p: np.asarray(v.numpy()) for p, v in plan.keras3.datasets}, {}


def _nnx(path: Path, plan: Plan) -> tuple[dict, dict]:
    """Orbax's restore into the template's state; weight name → restored value, and the other entries."""
    import orbax.checkpoint as ocp
    from flax import nnx

    template = plan.nnx.template
    restored = ocp.StandardCheckpointer().restore(path.absolute(), template)
    got_flat = {p: v.get_value() for p, v in nnx.to_flat_state(restored)}
    want_flat = {p: v.get_value() for p, v in nnx.to_flat_state(template)}
    weights = {name: np.asarray(got_flat[p]) for name, p in plan.nnx.paths.items()}
    taken = set(plan.nnx.paths.values())
    kept = {"/".join(map(str, p)): (_plain(got_flat[p]), _plain(want_flat[p])) for p in got_flat if p not in taken}
    return weights, kept


def _plain(x) -> np.ndarray:
    import jax

    if hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        return np.asarray(jax.random.key_data(x))
    return np.asarray(x)
