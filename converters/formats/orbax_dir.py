"""Orbax checkpoints of a Flax NNX state (``ocp.StandardCheckpointer``), written and read with the
``orbax-checkpoint`` library itself (no hand-written OCDBT/zarr).

Writing fills the template model's ``nnx.state`` (new Variables, the model is not touched) with the
converted weights as numpy arrays and saves it, so ``StandardCheckpointer().restore(path,
nnx.state(model))`` restores every entry: weights from the source, RNG keys and counters from the
template.  Orbax saves a whole tree at once: every converted tensor is held while it saves
(unchanged ones as views of the memory-mapped source).

Reading lists the leaves from Orbax's metadata (shapes, dtypes; nothing loaded) and names them
the linen way (``blocks/0/attn/q/kernel``, NNX's ``if_`` as ``if``, the ``value`` level dropped);
RNG state is no weight and is left out.  The first tensor asked for restores the whole tree
(Orbax restores trees, not leaves) and it stays in memory while the conversion runs.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import InputError

MARKERS = ("_CHECKPOINT_METADATA", "_METADATA")
RENAMED = {"if_": "if"}


def is_orbax(path: Path) -> bool:
    """Whether PATH is an Orbax checkpoint folder (it has Orbax's metadata files).

    >>> import tempfile; is_orbax(Path(tempfile.mkdtemp()))
    False
    """
    return path.is_dir() and any((path / m).is_file() for m in MARKERS)


def write(path: Path, template, paths: dict[str, tuple], produce: Callable[[str], np.ndarray]) -> int:
    """Save TEMPLATE (an ``nnx.State``) with each weight in PATHS (name → state path) from PRODUCE; bytes written."""
    import orbax.checkpoint as ocp
    from flax import nnx

    where = {p: name for name, p in paths.items()}
    filled = [(p, var.replace(np.asarray(produce(where[p]))) if p in where else var)
              for p, var in nnx.to_flat_state(template)]
    with ocp.StandardCheckpointer() as saver:
        saver.save(Path(path).absolute(), nnx.from_flat_state(filled))
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def order(template, paths: dict[str, tuple]) -> list[str]:
    """The order in which ``write`` asks for the weights (the state's own order)."""
    from flax import nnx

    where = {p: name for name, p in paths.items()}
    return [where[p] for p, _ in nnx.to_flat_state(template) if p in where]


class OrbaxDir:
    """An Orbax checkpoint folder opened for reading: ``infos`` from metadata, tensors on demand."""

    def __init__(self, path: str | Path) -> None:
        import orbax.checkpoint as ocp

        self.path = Path(path)
        self.extras: dict = {}
        self.skipped: list[str] = []
        try:
            meta = ocp.StandardCheckpointer().metadata(self.path.absolute())
            tree = meta.item_metadata.tree if hasattr(meta, "item_metadata") else meta
        except Exception as e:  # noqa: BLE001 - Orbax raises many types for a broken folder
            raise InputError(self.path, f"not a readable Orbax checkpoint ({type(e).__name__}: {e})") from None
        self._keys: dict[str, tuple] = {}
        self._infos: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
        for keys, leaf in _leaves(tree, ()):
            shape, dtype = tuple(getattr(leaf, "shape", ()) or ()), getattr(leaf, "dtype", None)
            name = "/".join(RENAMED.get(k, k) for k in keys if k != "value" or keys[-1] != "value")
            try:
                dt = np.dtype(dtype)
            except TypeError:
                dt = None
            if dt is None or dt.kind not in "fiub" and dt.name != "bfloat16" or _is_rng(keys):
                self.skipped.append(name)  # RNG keys and counters: state, not weights
                continue
            self._keys[name], self._infos[name] = keys, (shape, dt)
        self._tree = None

    @property
    def infos(self) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        return dict(self._infos)

    def load(self, name: str) -> np.ndarray:
        if self._tree is None:
            import orbax.checkpoint as ocp

            try:
                self._tree = ocp.StandardCheckpointer().restore(self.path.absolute())
            except Exception as e:  # noqa: BLE001
                raise InputError(self.path, f"cannot restore the Orbax checkpoint ({type(e).__name__}: {e})") from None
        node = self._tree
        for k in self._keys[name]:
            node = node[k]
        arr = np.asarray(node)
        want = self._infos[name]
        if arr.shape != want[0]:
            raise InputError(self.path, f"{name}: metadata says {want[0]}, the data is {arr.shape}")
        return arr


def _leaves(node, path: tuple):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaves(v, path + (str(k),))
    else:
        yield path, node


def _is_rng(keys: tuple) -> bool:
    # nnx.Rngs streams: <stream>/count (uint32) beside <stream>/key; nnx.RNN, Dropout keep them under `rngs`
    core = [k for k in keys if k != "value"]
    return "rngs" in core or (core and core[-1] in ("count", "key") and len(core) >= 2 and core[-2] in ("default", "params", "dropout"))
