"""Training checkpoints pushed with the weights, and resuming from them (``load_checkpoint``).

``PushToHubCallback(checkpoint=True)`` adds a ``checkpoint/`` folder to each push's commit, as
transformers' TF callback does, in safe formats only:

* ``checkpoint/trainer_state.json`` — format, framework, step and epoch counters, the optimizer's
  class and plain values (param groups, names, shapes), and the sha256 of the weight files it goes
  with;
* ``checkpoint/optimizer.safetensors`` (PyTorch, tf_keras) or ``checkpoint/optimizer.msgpack``
  (an optax state through ``flax.serialization``).

The weights are the repo's own variant of the same commit (``model.safetensors``, ``tf_model.h5``
or ``flax_model.msgpack``, written by the model itself), so they are not stored twice; the recorded
sha256 tells a checkpoint from weights a later push replaced.  ``load_checkpoint`` downloads both at
one commit, loads the weights into the model and the state into the optimizer, and returns the
counters to go on from.

>>> record = new_record("pt", step=6, epoch=None, optimizer={"class": "Adam"})
>>> record["format"], record["step"], record["epoch"]
('tensorferry.checkpoint/1', 6, None)
"""
from __future__ import annotations

import importlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tensorferry.converters.constants import CHECKPOINT_DIR, CHECKPOINT_STATE, CONFIG, FILES, FRAMEWORKS
from tensorferry.converters.errors import InputError
from tensorferry.publish.files import is_variant_file, sha256, variant_files

FORMAT = "tensorferry.checkpoint/1"
MODULES = {"pt": "torch", "tf": "keras", "flax": "flax"}  # framework → this package's module for its optimizer
RECORD_KEYS = ("step", "epoch", "optimizer", "weights")  # besides format and framework
OPTIMIZER_KEYS = {"pt": {"state": dict}, "tf": {"variables": list}, "flax": {}}  # what each restore reads
SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass
class Resumed:
    """Where training stopped: the counters, and the model and optimizer holding the checkpoint's state.

    PyTorch and Keras objects are the ones passed, loaded in place; for Flax, ``model`` is the module
    bound to the loaded weights and ``optimizer`` the loaded optax state (new values: arrays are immutable).
    """

    step: int | None
    epoch: int | None
    model: Any
    optimizer: Any
    source: str  # the folder, or repo@commit, it was read from


def _framework_module(fw: str) -> Any:
    return importlib.import_module(f"{__package__}.{MODULES[fw]}")


def new_record(framework: str, *, step: int | None, epoch: int | None, optimizer: dict) -> dict:
    """The JSON of ``trainer_state.json`` before the weights' digests are added.

    >>> new_record("flax", step=None, epoch=2, optimizer={"class": "ScaleByAdamState"})["weights"]
    {}
    """
    return {"format": FORMAT, "framework": framework, "step": step, "epoch": epoch, "optimizer": optimizer, "weights": {}}


def write(model: Any, optimizer: Any, folder: Path, *, step: int | None, epoch: int | None) -> None:
    """Snapshot OPTIMIZER's state and the counters into FOLDER (the future ``checkpoint/``), now.

    MODEL is a framework mixin's model (its framework decides the format).  Raises ``InputError``
    for an optimizer state that cannot be saved safely.
    """
    fw = getattr(model, "framework", None)
    if fw not in FRAMEWORKS:
        raise InputError(type(model).__name__, "is not a TorchHubMixin, KerasHubMixin or FlaxHubMixin model")
    record = new_record(fw, step=step, epoch=epoch, optimizer=_framework_module(fw).save(model, optimizer, folder))
    _write_json(folder / Path(CHECKPOINT_STATE).name, record)


def seal(folder: Path, weights: Path) -> None:
    """Add the sha256 of the own weight files in WEIGHTS (the staged push) to FOLDER's record.

    Run in the background push, so training does not wait for the hashing.
    """
    path = folder / Path(CHECKPOINT_STATE).name
    record = json.loads(path.read_text())
    record["weights"] = {p.name: sha256(p) for p in variant_files(weights, record["framework"])}
    _write_json(path, record)


def files(folder: Path) -> dict[str, Path]:
    """FOLDER's checkpoint files under their repo paths (``checkpoint/…``)."""
    return {f"{CHECKPOINT_DIR}/{p.name}": p for p in sorted(folder.iterdir()) if p.is_file()}


def load_checkpoint(repo_or_dir: str | Path, model: Any, optimizer: Any = None, *, revision: str | None = None,
                    token: str | None = None, cache_dir: str | None = None, local_files_only: bool = False,
                    weights: bool = True) -> Resumed:
    """Resume training from a push made with ``PushToHubCallback(checkpoint=True)`` (a Hub repo or a folder).

    Loads the repo's own weights into MODEL (a fresh model of the same class; ``weights=False`` keeps
    its own) and the optimizer state into OPTIMIZER — a ``torch.optim`` optimizer over the model's
    parameters; for tf_keras the compiled model's optimizer (default); for Flax a template
    ``tx.init(params)`` — and returns the step and epoch counters with them (``Resumed``).
    Go on with ``model.fit(..., initial_epoch=resumed.epoch)`` or your loop from ``resumed.step + 1``.

    A folder laid out as a push leaves it (``write`` and ``seal`` are what the callback runs):

    >>> import tempfile, torch
    >>> from tensorferry.publish import TorchHubMixin
    >>> class Tiny(torch.nn.Module, TorchHubMixin):
    ...     def __init__(self) -> None:
    ...         super().__init__()
    ...         self.fc = torch.nn.Linear(2, 1)
    >>> net, folder = Tiny(), Path(tempfile.mkdtemp())
    >>> opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    >>> net.fc(torch.ones(1, 2)).sum().backward(); opt.step()
    >>> net.save_pretrained(folder, frameworks=["pt"])
    >>> (folder / "checkpoint").mkdir()
    >>> write(net, opt, folder / "checkpoint", step=1, epoch=None); seal(folder / "checkpoint", folder)
    >>> sorted(files(folder / "checkpoint"))
    ['checkpoint/optimizer.safetensors', 'checkpoint/trainer_state.json']
    >>> fresh = Tiny()
    >>> resumed = load_checkpoint(folder, fresh, torch.optim.SGD(fresh.parameters(), lr=0.1, momentum=0.9))
    >>> resumed.step, torch.equal(fresh.fc.weight, net.fc.weight), "momentum_buffer" in resumed.optimizer.state_dict()["state"][0]
    (1, True, True)
    """
    fw = getattr(model, "framework", None)
    if fw not in FRAMEWORKS:
        raise InputError(type(model).__name__, "is not a TorchHubMixin, KerasHubMixin or FlaxHubMixin model")
    folder, source = _folder(repo_or_dir, fw, revision=revision, token=token, cache_dir=cache_dir,
                             local_files_only=local_files_only)
    record = _read_record(folder / CHECKPOINT_STATE, fw)
    module = _framework_module(fw)
    if weights:
        for name, digest in record["weights"].items():
            if not (folder / name).is_file() or sha256(folder / name) != digest:
                raise InputError(source, f"{name} is not the file {CHECKPOINT_STATE} was written with: a later push "
                                         "replaced the weights; resume from the commit that pushed the checkpoint (revision=)")
        model = module.load_weights(model, folder)
    optimizer = module.restore(model, optimizer, folder / CHECKPOINT_DIR, record["optimizer"])
    return Resumed(record.get("step"), record.get("epoch"), model, optimizer, source)


def _folder(target: str | Path, fw: str, **options: Any) -> tuple[Path, str]:
    """A folder as is; a repo's own variant and ``checkpoint/`` downloaded at one commit."""
    if os.path.isdir(target):
        return Path(target), str(target)
    from tensorferry.publish.hub_io import Hub, fetch

    folder, found = fetch(str(target), Hub.resolve(None, options.pop("token")), [fw], extra=(CONFIG, f"{CHECKPOINT_DIR}/*"),
                          **options)
    return folder, f"{target}@{found['sha']}"


def _read_record(path: Path, fw: str) -> dict:
    """The checked record of ``trainer_state.json``: a hostile or damaged one is an ``InputError`` naming it,
    and its weight names are plain file names of FW's variant (nothing outside the folder is read)."""
    if not path.is_file():
        raise InputError(path.parent.parent, f"holds no {CHECKPOINT_STATE}: push with PushToHubCallback(checkpoint=True)")
    try:
        record = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise InputError(path, f"not JSON: {e}") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise InputError(path, f"not a {FORMAT} record")
    if record.get("framework") != fw:
        raise InputError(path, f"was written by a {record.get('framework')} model, not a {fw} one")
    missing = [k for k in RECORD_KEYS if k not in record]
    if missing:
        raise InputError(path, f"lacks {', '.join(missing)}")
    for key in ("step", "epoch"):
        if record[key] is not None and (not isinstance(record[key], int) or isinstance(record[key], bool) or record[key] < 0):
            raise InputError(path, f"{key} is {record[key]!r}, not a count")
    weights = record["weights"]
    if not isinstance(weights, dict):
        raise InputError(path, f"weights is a {type(weights).__name__}, not a table of file names and digests")
    for name, digest in weights.items():
        if not is_variant_file(name, fw):
            raise InputError(path, f"weights names {name!r}, not a file of the {fw} variant ({', '.join(FILES[fw].patterns)})")
        if not isinstance(digest, str) or not SHA256.fullmatch(digest):
            raise InputError(path, f"the digest of {name} is not a sha256")
    optimizer = record["optimizer"]
    if not isinstance(optimizer, dict) or not isinstance(optimizer.get("class"), str):
        raise InputError(path, "optimizer is not a table with the optimizer's class")
    for key, kind in OPTIMIZER_KEYS[fw].items():
        if not isinstance(optimizer.get(key), kind):
            raise InputError(path, f"optimizer.{key} is missing or not a {kind.__name__}")
    return record


def _write_json(path: Path, record: dict) -> None:
    path.write_text(json.dumps(record, indent=1, sort_keys=True, allow_nan=False) + "\n")
