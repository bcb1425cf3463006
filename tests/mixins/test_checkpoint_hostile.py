"""Damaged or hostile ``checkpoint/`` folders: every one is an ``InputError`` naming the file and the problem,
and a weight name in the record never makes ``load_checkpoint`` read a file outside the folder."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tensorferry.converters.errors import InputError
from tensorferry.publish import load_checkpoint
from tensorferry.publish.files import sha256
from tensorferry.publish.resume import state

from . import twins

STATE = "checkpoint/trainer_state.json"


def _torch_checkpoint(folder: Path):
    """A folder as a push with checkpoint=True leaves it: the weights, the record and the optimizer state."""
    import torch

    model = twins.torch_model(seed=0)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    torch.nn.functional.cross_entropy(model(twins.tokens(batch=4)), torch.tensor([0, 1, 2, 3])).backward()
    optimizer.step()
    model.save_pretrained(folder, frameworks=["pt"])
    (folder / "checkpoint").mkdir()
    state.write(model, optimizer, folder / "checkpoint", step=1, epoch=None)
    state.seal(folder / "checkpoint", folder)
    return folder


def _fresh():
    import torch

    model = twins.torch_model(seed=4)
    return model, torch.optim.Adam(model.parameters(), lr=0.01)


def _edit(folder: Path, change) -> None:
    path = folder / STATE
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record))


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    return _torch_checkpoint(tmp_path_factory.mktemp("ckpt") / "repo")


@pytest.fixture
def folder(saved, tmp_path) -> Path:
    import shutil

    return Path(shutil.copytree(saved, tmp_path / "repo"))


def test_the_untouched_checkpoint_loads(folder) -> None:
    resumed = load_checkpoint(folder, *_fresh())
    assert resumed.step == 1 and resumed.optimizer.state_dict()["state"][0]["step"].item() == 1.0


def _weights(names):
    return lambda r: r.update(weights={n: "0" * 64 for n in names})


HOSTILE = {
    "absolute path": (_weights(["/etc/passwd"]), "'/etc/passwd', not a file of the pt variant"),
    "path traversal": (_weights(["../repo/model.safetensors"]), "not a file of the pt variant"),
    "another framework's file": (_weights(["tf_model.h5"]), "not a file of the pt variant"),
    "weights a list": (lambda r: r.update(weights=["model.safetensors"]), "weights is a list"),
    "digest not text": (lambda r: r.update(weights={"model.safetensors": 5}), "not a sha256"),
    "no weights": (lambda r: r.pop("weights"), "lacks weights"),
    "step as text": (lambda r: r.update(step="3"), "step is '3', not a count"),
    "no optimizer state": (lambda r: r["optimizer"].pop("state"), "optimizer.state is missing"),
    "optimizer a list": (lambda r: r.update(optimizer=["Adam"]), "optimizer is not a table"),
    "bad __items__": (lambda r: r["optimizer"].update(state={"__items__": 5}), "__items__ tag"),
    "unhashable __items__ key": (lambda r: r["optimizer"]["state"].update(state={"__items__": [[[0], {}]]}), "__items__ tag"),
    "bad __float__": (lambda r: r["optimizer"]["state"]["param_groups"][0].update(lr={"__float__": [1]}), "__float__ tag"),
    "__float__ as code": (lambda r: r["optimizer"]["state"]["param_groups"][0].update(lr={"__float__": "1e400x"}),
                          "__float__ tag"),
    "bad tensor reference": (lambda r: r["optimizer"]["state"].update(state={"__items__": [[0, {"__tensor__": []}]]}),
                             "refers to tensor"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_record_is_a_typed_error_naming_it(folder, case) -> None:
    change, message = HOSTILE[case]
    _edit(folder, change)
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace("[", r"\[")) as e:
        load_checkpoint(folder, *_fresh())
    assert ("trainer_state.json" in str(e.value)) or ("optimizer.safetensors" in str(e.value))


def test_a_weight_name_outside_the_folder_is_never_opened(folder, tmp_path) -> None:
    """A planted file beside the folder, recorded with its true digest, is refused by name, not by digest."""
    outside = tmp_path / "secret.safetensors"
    outside.write_bytes(b"not yours")
    digest = sha256(outside)
    _edit(folder, lambda r: r.update(weights={"../secret.safetensors": digest}))
    with pytest.raises(InputError, match="not a file of the pt variant"):
        load_checkpoint(folder, *_fresh())


@pytest.mark.parametrize("damage", ["truncated", "missing", "garbage"])
def test_a_damaged_optimizer_file_is_a_typed_error_naming_it(folder, damage) -> None:
    path = folder / "checkpoint" / "optimizer.safetensors"
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "missing":
        path.unlink()
    else:
        path.write_bytes(b"\xff" * 64)
    with pytest.raises(InputError, match="optimizer.safetensors: (truncated or corrupt|missing)"):
        load_checkpoint(folder, *_fresh())


def test_keras_record_listing_other_variables_than_the_file_is_a_typed_error(tmp_path) -> None:
    import tf_keras as keras

    model = twins.keras_model()
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(twins.tokens(batch=4), np.array([0, 1, 2, 3]), epochs=1, verbose=0)
    model.save_pretrained(tmp_path, frameworks=["tf"])
    (tmp_path / "checkpoint").mkdir()
    state.write(model, None, tmp_path / "checkpoint", step=1, epoch=1)
    state.seal(tmp_path / "checkpoint", tmp_path)
    _edit(tmp_path, lambda r: r["optimizer"].update(variables=[]))
    fresh = twins.keras_model()
    fresh.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    with pytest.raises(InputError, match="optimizer.safetensors: holds .* tensors, the record lists 0"):
        load_checkpoint(tmp_path, fresh)


def test_flax_corrupt_optimizer_file_is_a_typed_error(tmp_path) -> None:
    import jax.numpy as jnp
    import optax

    model = twins.flax_model()
    tx = optax.adam(0.01)
    model.save_pretrained(tmp_path, frameworks=["flax"])
    (tmp_path / "checkpoint").mkdir()
    state.write(model, tx.init(model.variables["params"]), tmp_path / "checkpoint", step=1, epoch=None)
    state.seal(tmp_path / "checkpoint", tmp_path)
    (tmp_path / "checkpoint" / "optimizer.msgpack").write_bytes(b"\xc1\xc1\xc1")
    template = tx.init(jnp.zeros(1))
    with pytest.raises(InputError, match="optimizer.msgpack: truncated or corrupt"):
        load_checkpoint(tmp_path, twins.flax_classes()(), template)
