"""Every name tensorferry writes or looks for, written once: files per framework, side-data keys, aliases.

This module imports nothing but the standard library, so the verification workers can use it in
any Python.

>>> FILES["tf"].single, FILES["tf"].shard(2, 3)
('tf_model.h5', 'tf_model-00002-of-00003.h5')
>>> parse_frameworks("torch,jax")
['pt', 'flax']
>>> FILES["pt"].patterns
['model.safetensors', 'model-*-of-*.safetensors', 'model.safetensors.index.json']
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# The nodes of the graph; "pt" (safetensors in PyTorch layout) is also the canonical intermediate.
FRAMEWORKS = ("pt", "tf", "flax")
NAMES = {"pt": "PyTorch", "tf": "TensorFlow", "flax": "Flax"}
# What people type for a framework on the command line or in the Python API.
ALIASES = {"pytorch": "pt", "torch": "pt", "tensorflow": "tf", "jax": "flax"}
CANONICAL = "canonical (safetensors, PyTorch layout)"


@dataclass(frozen=True)
class Files:
    """One format's standard file names: the single file, the shard index and the shard pattern."""

    single: str
    index: str
    shard_template: str

    def shard(self, i: int, n: int) -> str:
        """The name of shard ``i`` of ``n`` (1-based), as transformers names them."""
        return self.shard_template.format(i=i, n=n)

    @property
    def patterns(self) -> list[str]:
        """Glob patterns matching every file of this format (for Hub downloads)."""
        return [self.single, self.shard_template.replace("{i:05d}", "*").replace("{n:05d}", "*"), self.index]

    @property
    def names(self) -> tuple[str, str]:
        return self.single, self.index


FILES = {
    "pt": Files("model.safetensors", "model.safetensors.index.json", "model-{i:05d}-of-{n:05d}.safetensors"),
    "tf": Files("tf_model.h5", "tf_model.h5.index.json", "tf_model-{i:05d}-of-{n:05d}.h5"),
    "flax": Files("flax_model.msgpack", "flax_model.msgpack.index.json", "flax_model-{i:05d}-of-{n:05d}.msgpack"),
}
# Read-only: PyTorch pickles are read (with weights_only=True) but never written.
PICKLE_FILES = Files("pytorch_model.bin", "pytorch_model.bin.index.json", "pytorch_model-{i:05d}-of-{n:05d}.bin")
# Standard names in a folder, in order of preference: (framework, files).
STANDARD = (("pt", FILES["pt"]), ("pt", PICKLE_FILES), ("tf", FILES["tf"]), ("flax", FILES["flax"]))
# Today's frameworks, written for a model given with --model: Keras 3's own weights file, and the
# folder of an Orbax checkpoint of a Flax NNX state.
KERAS3_WEIGHTS = "model.weights.h5"
NNX_DIR = "nnx"
KERAS3_PATTERNS = [KERAS3_WEIGHTS, "model.weights.json", "model_*.weights.h5"]  # sharded: index and shards
CONFIG = "config.json"
README = "README.md"
VERIFICATION = ("verification.json", "verification.md", "verification.png")  # report: JSON, Markdown, plot
# A training checkpoint pushed next to the weights (PushToHubCallback(checkpoint=True)): optimizer state
# and counters, safe formats only; the weights are the repo's own variant of the same commit.
CHECKPOINT_DIR = "checkpoint"
CHECKPOINT_STATE = "checkpoint/trainer_state.json"
CHECKPOINT_TENSORS = "checkpoint/optimizer.safetensors"  # PyTorch and Keras optimizers
CHECKPOINT_TREE = "checkpoint/optimizer.msgpack"  # an optax state (flax.serialization)
MAX_SHARD_SIZE = "5GB"  # transformers' default for save_pretrained
LOCAL_HUB_PORT = 8765  # `tensorferry hub serve` and the demo
DEFAULT_TIMEOUT = 900.0  # seconds per verification worker: a real model on CPU loads and runs well within it

# Side data (exact LSTM/GRU biases, BatchNorm counters, ties) lives under this name in TF and
# Flax files; Keras and Flax loaders ignore it, and it makes every round trip bit-exact.
EXTRA = "__tensorferry__"
# Tie records: in safetensors metadata, and as side data in TF/Flax files.
TIES_KEY = "tensorferry.ties"


def parse_frameworks(names: Sequence[str] | str, where: str = "--to") -> list[str]:
    """Framework names from a list or ``"pt,tf"``, aliases resolved, duplicates dropped.

    Raises ``InputError`` naming ``where`` for an unknown or empty list.

    >>> parse_frameworks(["tensorflow", "pt", "tf"])
    ['tf', 'pt']
    """
    items = names.split(",") if isinstance(names, str) else list(names)
    out = [ALIASES.get(n.strip().lower(), n.strip().lower()) for n in items if isinstance(n, str) and n.strip()]
    bad = [n for n in out if n not in FRAMEWORKS]
    if bad or not out:
        from .errors import InputError

        raise InputError(where, f"unknown framework {', '.join(bad) or 'list (empty)'}: choose from {', '.join(FRAMEWORKS)}")
    return list(dict.fromkeys(out))
