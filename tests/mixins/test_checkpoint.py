"""Training checkpoints against the local Hub: train N steps pushing with ``checkpoint=True``, resume a fresh
model and optimizer from the repo with ``load_checkpoint``, train M more, and land where an uninterrupted
N+M-step run lands — PyTorch (Adam), tf_keras ``fit`` (Adam, two epochs) and Flax (optax adam)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tensorferry.converters.errors import InputError
from tensorferry.publish import PushToHubCallback, load_checkpoint

from . import twins

EXACT = 1e-6  # what "continues identically" allows (the runs below are in fact bit-identical on CPU)


def _batch(step: int):
    """A different batch each step, the same in every run."""
    return twins.tokens(batch=4, seed=100 + step), np.random.default_rng(step).integers(0, 5, 4)


def _checkpoint_files(hub, repo: str, revision: str | None = None) -> dict:
    files = set(hub.api().list_repo_files(repo, revision=revision))
    state = json.loads(open(hub.api().hf_hub_download(repo, "checkpoint/trainer_state.json", revision=revision)).read())
    return {"files": files, "state": state}


# PyTorch ---------------------------------------------------------------------------------------------------
def _torch_run(model, optimizer, steps: range, callback=None) -> None:
    import torch

    model.train()
    for step in steps:
        x, y = _batch(step)
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), torch.as_tensor(y)).backward()
        optimizer.step()
        if callback is not None:
            callback.on_step(model, step, optimizer=optimizer)


def test_torch_adam_resumes_from_the_hub_as_if_never_stopped(hub) -> None:
    import torch

    repo = hub.repo("torch-ckpt")
    model = twins.torch_model(seed=0)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01, betas=(0.8, 0.99))
    callback = PushToHubCallback(repo, save_strategy="steps", save_steps=3, frameworks=["pt", "flax"], checkpoint=True,
                                 token=hub.token, quiet=True)
    _torch_run(model, optimizer, range(1, 4), callback)
    callback.on_train_end(model)
    assert not callback.errors and [m for m, _ in callback.results] == ["Training in progress, step 3"]

    # one commit holds the weights and the checkpoint; the card says what checkpoint/ is
    found = _checkpoint_files(hub, repo)
    assert {"model.safetensors", "flax_model.msgpack", "checkpoint/trainer_state.json",
            "checkpoint/optimizer.safetensors"} <= found["files"]
    assert not [f for f in found["files"] if f.endswith((".bin", ".pkl", ".pickle", ".pt"))]
    state = found["state"]
    assert state["step"] == 3 and state["epoch"] is None and state["framework"] == "pt"
    assert state["optimizer"]["class"] == "Adam" and set(state["weights"]) == {"model.safetensors"}
    readme = open(hub.api().hf_hub_download(repo, "README.md")).read()
    assert "### Training checkpoint" in readme and "`checkpoint/trainer_state.json`" in readme
    assert len(hub.commits(repo)) == 2  # the repo's creation and the one push

    # a fresh model (other weights) and optimizer (other betas): both come from the checkpoint
    fresh = twins.torch_model(seed=9)
    fresh_opt = torch.optim.Adam(fresh.parameters(), lr=0.01)
    resumed = load_checkpoint(repo, fresh, fresh_opt, token=hub.token)
    assert (resumed.step, resumed.epoch) == (3, None) and resumed.model is fresh and resumed.optimizer is fresh_opt
    assert fresh_opt.param_groups[0]["betas"] == (0.8, 0.99) and fresh.training is False  # its mode is kept
    _torch_run(fresh, fresh_opt, range(resumed.step + 1, 8))

    straight = twins.torch_model(seed=0)
    straight_opt = torch.optim.Adam(straight.parameters(), lr=0.01, betas=(0.8, 0.99))
    _torch_run(straight, straight_opt, range(1, 8))
    for (name, a), b in zip(fresh.state_dict().items(), straight.state_dict().values()):
        assert (a - b).abs().max().item() <= EXACT, name
    assert fresh_opt.state_dict()["state"][0]["step"].item() == 7


def test_a_checkpoint_older_than_the_weights_is_refused_and_its_commit_still_resumes(hub) -> None:
    import torch

    repo = hub.repo("stale")
    model = twins.torch_model(seed=0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    callback = PushToHubCallback(repo, save_strategy="steps", save_steps=2, frameworks=["pt"], checkpoint=True,
                                 token=hub.token, quiet=True)
    _torch_run(model, optimizer, range(1, 3), callback)
    callback.wait()
    pushed = hub.commits(repo)[0].commit_id
    twins.torch_model(seed=4).push_to_hub(repo, token=hub.token, frameworks=["pt"])  # new weights, old checkpoint/
    fresh = twins.torch_model(seed=1)
    with pytest.raises(InputError, match="a later push replaced the weights"):
        load_checkpoint(repo, fresh, torch.optim.SGD(fresh.parameters(), lr=0.1, momentum=0.9), token=hub.token)
    resumed = load_checkpoint(repo, fresh, torch.optim.SGD(fresh.parameters(), lr=0.1, momentum=0.9),
                              revision=pushed, token=hub.token)
    assert resumed.step == 2 and resumed.source == f"{repo}@{pushed}"
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), model.state_dict().values()))
    assert torch.equal(resumed.optimizer.state_dict()["state"][0]["momentum_buffer"],
                       optimizer.state_dict()["state"][0]["momentum_buffer"])


def test_what_cannot_be_checkpointed_safely_is_a_typed_error(hub, tmp_path) -> None:
    import torch

    model = twins.torch_model()
    callback = PushToHubCallback(hub.repo("refused"), frameworks=["pt"], checkpoint=True, token=hub.token, quiet=True)
    with pytest.raises(InputError, match="needs the optimizer"):
        callback.on_epoch(model, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    optimizer.param_groups[0]["schedule"] = lambda step: 0.1  # not a number, string or list: never pickled
    with pytest.raises(InputError, match=r"param_groups\[0\]\.schedule: a function cannot be saved safely"):
        callback.on_epoch(model, 1, optimizer=optimizer)
    with pytest.raises(InputError, match="add 'pt' to frameworks"):
        PushToHubCallback("alice/x", frameworks=["tf"], checkpoint=True).push(model, "m", optimizer=optimizer)
    assert not callback.results and not callback.errors and callback._queued is None
    # a folder without checkpoint/, and a checkpoint of another optimizer class
    model.save_pretrained(tmp_path, frameworks=["pt"])
    with pytest.raises(InputError, match="holds no checkpoint/trainer_state.json"):
        load_checkpoint(tmp_path, model, torch.optim.SGD(model.parameters(), lr=0.1))
    from tensorferry.publish.resume import state

    (tmp_path / "checkpoint").mkdir()
    state.write(model, torch.optim.Adam(model.parameters()), tmp_path / "checkpoint", step=1, epoch=None)
    with pytest.raises(InputError, match="holds a Adam state, not a SGD one"):
        load_checkpoint(tmp_path, model, torch.optim.SGD(model.parameters(), lr=0.1))
    other = torch.nn.Linear(2, 1)  # another model's parameters: the state does not fit
    with pytest.raises(InputError, match="does not fit this optimizer"):
        load_checkpoint(tmp_path, model, torch.optim.Adam(other.parameters()), weights=False)
    (tmp_path / "checkpoint" / "trainer_state.json").write_text("{not json")
    with pytest.raises(InputError, match="trainer_state.json: not JSON"):
        load_checkpoint(tmp_path, model, torch.optim.Adam(model.parameters()))


# tf_keras ----------------------------------------------------------------------------------------------------
def _keras(seed: int):
    import tf_keras as keras

    keras.utils.set_random_seed(seed)
    model = twins.keras_classes()()
    model(model.dummy_inputs)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _keras_data():
    return twins.tokens(batch=8, seed=5), np.random.default_rng(5).integers(0, 5, 8)


def test_keras_fit_resumes_from_the_hub_as_if_never_stopped(hub) -> None:
    repo = hub.repo("keras-ckpt")
    x, y = _keras_data()
    model = _keras(seed=1)
    callback = PushToHubCallback(repo, frameworks=["tf", "pt"], checkpoint=True, token=hub.token, quiet=True)
    model.fit(x, y, epochs=1, batch_size=4, shuffle=False, callbacks=[callback], verbose=0)
    assert not callback.errors and [m for m, _ in callback.results] == ["Training in progress, epoch 1"]
    found = _checkpoint_files(hub, repo)
    assert {"tf_model.h5", "model.safetensors", "checkpoint/optimizer.safetensors"} <= found["files"]
    assert (found["state"]["step"], found["state"]["epoch"]) == (2, 1)
    assert found["state"]["optimizer"]["class"] == "Adam" and found["state"]["optimizer"]["variables"][0]["shape"] == []

    with pytest.raises(InputError, match="add 'tf' to frameworks"):  # refused before training starts
        fresh_fit = _keras(seed=8)
        fresh_fit.fit(x, y, epochs=1, callbacks=[PushToHubCallback(repo, frameworks=["pt"], checkpoint=True)], verbose=0)
    assert int(fresh_fit.optimizer.iterations.numpy()) == 0
    uncompiled = twins.keras_classes()()
    with pytest.raises(InputError, match="compile the Keras model"):
        load_checkpoint(repo, uncompiled, token=hub.token)
    fresh = _keras(seed=8)
    resumed = load_checkpoint(repo, fresh, token=hub.token)  # the compiled model's optimizer
    assert (resumed.step, resumed.epoch) == (2, 1) and int(fresh.optimizer.iterations.numpy()) == 2
    more = PushToHubCallback(repo, frameworks=["tf"], checkpoint=True, token=hub.token, quiet=True)
    fresh.fit(x, y, epochs=2, initial_epoch=resumed.epoch, batch_size=4, shuffle=False, callbacks=[more], verbose=0)

    straight = _keras(seed=1)
    straight.fit(x, y, epochs=2, batch_size=4, shuffle=False, verbose=0)
    for a, b in zip(fresh.weights, straight.weights):
        assert np.abs(a.numpy() - b.numpy()).max() <= EXACT, a.name
    for a, b in zip(fresh.optimizer.variables, straight.optimizer.variables):
        assert np.abs(a.numpy() - b.numpy()).max() <= EXACT, a.name
    # the resumed run's push counts on from the restored counters
    assert not more.errors and (lambda s: (s["step"], s["epoch"]))(_checkpoint_files(hub, repo)["state"]) == (4, 2)


# Flax + optax ------------------------------------------------------------------------------------------------
def test_flax_optax_adam_resumes_from_the_hub_as_if_never_stopped(hub) -> None:
    import jax
    import optax

    repo = hub.repo("flax-ckpt")
    module = twins.flax_classes()()
    tx = optax.adam(0.01)

    def loss(params, x, y):
        logits = module.apply({"params": params}, x)
        return -jax.numpy.mean(jax.nn.log_softmax(logits)[np.arange(len(y)), y])

    @jax.jit
    def update(params, opt_state, x, y):
        grads = jax.grad(loss)(params, x, y)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    def run(params, opt_state, steps, callback=None):
        for step in steps:
            params, opt_state = update(params, opt_state, *_batch(step))
            if callback is not None:
                callback.on_step(module.bind({"params": params}), step, optimizer=opt_state)
        return params, opt_state

    start = twins.flax_model().variables["params"]
    callback = PushToHubCallback(repo, save_strategy="steps", save_steps=2, frameworks=["flax"], checkpoint=True,
                                 token=hub.token, quiet=True)
    run(start, tx.init(start), range(1, 3), callback)
    callback.wait()
    assert not callback.errors and "checkpoint/optimizer.msgpack" in _checkpoint_files(hub, repo)["files"]

    other = module.init(jax.random.PRNGKey(7), module.dummy_inputs())["params"]  # a fresh start, other weights
    resumed = load_checkpoint(repo, module.bind({"params": other}), tx.init(other), token=hub.token)
    assert resumed.step == 2 and int(resumed.optimizer[0].count) == 2
    unbound = load_checkpoint(repo, module, tx.init(other), token=hub.token)  # shapes from dummy_inputs
    same = jax.tree_util.tree_map(lambda a, b: bool((np.asarray(a) == np.asarray(b)).all()),
                                  unbound.model.variables, resumed.model.variables)
    assert all(jax.tree_util.tree_leaves(same))
    params, opt_state = run(resumed.model.variables["params"], resumed.optimizer, range(3, 6))
    straight, straight_state = run(start, tx.init(start), range(1, 6))
    diffs = jax.tree_util.tree_map(lambda a, b: float(np.abs(np.asarray(a) - np.asarray(b)).max()),
                                   (params, opt_state), (straight, straight_state))
    assert max(jax.tree_util.tree_leaves(diffs)) <= EXACT
