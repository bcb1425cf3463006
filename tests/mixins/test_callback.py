"""Pushing during training against the local Hub: a Keras ``fit`` with the callback, a PyTorch loop with
the same object as a hook, snapshots replacing queued ones, and a failing push that training survives."""
from __future__ import annotations

import numpy as np
import pytest

from tensorferry.publish import PushToHubCallback
from tensorferry.publish.hub import create_token

from . import twins

TOLERANCE = 5e-5


def _data(n: int = 8):
    rng = np.random.default_rng(3)
    return twins.tokens(batch=n, seed=3), rng.integers(0, 5, n)


def test_keras_fit_over_two_epochs_makes_two_commits(hub) -> None:
    import tf_keras as keras

    model, repo = twins.keras_model(), hub.repo("keras-fit")
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    callback = PushToHubCallback(repo, save_strategy="epoch", token=hub.token, quiet=True)
    assert isinstance(callback, keras.callbacks.Callback)
    # waits after each epoch's snapshot, so neither push replaces the other (that is tested below)
    settle = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: callback.wait())
    x, y = _data()
    model.fit(x, y, epochs=2, batch_size=4, callbacks=[callback, settle], verbose=0)
    assert not callback.errors
    titles = [c.title for c in hub.commits(repo)]
    assert titles[:2] == ["Training in progress, epoch 2", "Training in progress, epoch 1"] and len(titles) == 3
    # what the last commit holds is the trained model, in every framework
    loaded = twins.torch_classes().from_pretrained(repo, token=hub.token)
    assert np.abs(twins.run(loaded, x) - twins.run(model, x)).max() <= TOLERANCE


def _train(model, callback, steps: int, on_step=None) -> int:
    import torch

    x, y = _data()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    model.train()
    done = 0
    for step in range(1, steps + 1):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), torch.as_tensor(y))
        loss.backward()
        optimizer.step()
        callback.on_step(model, step)
        if on_step:
            on_step(step)
        done = step
    callback.on_train_end(model)
    return done


def test_torch_loop_pushes_with_the_hook_and_ends_with_the_final_weights(hub) -> None:
    model, repo = twins.torch_model(), hub.repo("torch-loop")
    callback = PushToHubCallback(repo, save_strategy="steps", save_steps=3, frameworks=["pt", "tf"], token=hub.token,
                                 quiet=True)
    assert _train(model, callback, 7) == 7
    assert not callback.errors and callback._queued is None  # on_train_end waited for every push
    titles = [c.title for c in hub.commits(repo)]
    # step 7 was not a save step: the end of training pushes it; a queued step may be replaced by a newer one
    assert titles[0] == "End of training" and len(callback.results) + callback.replaced == 3
    assert set(titles[1:-1]) <= {"Training in progress, step 3", "Training in progress, step 6"}
    assert set(hub.api().list_repo_files(repo)) >= {"model.safetensors", "tf_model.h5"}
    loaded = twins.keras_classes().from_pretrained(repo, token=hub.token)
    x, _ = _data()
    model.eval()
    assert np.abs(twins.run(loaded, x) - twins.run(model, x)).max() <= TOLERANCE


def test_a_newer_snapshot_replaces_a_queued_one(hub) -> None:
    repo = hub.repo("replace")
    callback = PushToHubCallback(repo, token=hub.token, frameworks=["pt"], quiet=True)
    models = [twins.torch_model(seed=s) for s in range(4)]
    for i, m in enumerate(models):
        callback.push(m, f"snapshot {i}")
    callback.wait()
    pushed = [message for message, _ in callback.results]
    assert pushed[-1] == "snapshot 3" and callback.replaced >= 1 and len(pushed) + callback.replaced == 4
    assert hub.commits(repo)[0].title == "snapshot 3"


def test_a_failed_push_is_reported_and_training_goes_on(hub, capsys) -> None:
    from tensorferry.publish.hub.storage import Store

    token = create_token(hub.data_dir, "carol")
    model, repo = twins.torch_model(), "carol/failing"
    callback = PushToHubCallback(repo, save_strategy="steps", save_steps=2, frameworks=["pt"], token=token)

    def revoke(step: int) -> None:  # the token is revoked on the Hub after the first push landed
        if step == 2:
            callback.wait()
            store = Store(hub.data_dir)
            with store.tx() as db:
                db.execute("DELETE FROM tokens WHERE user='carol'")
            store.close()

    assert _train(model, callback, 6, revoke) == 6
    assert [m for m, _ in callback.results] == ["Training in progress, step 2"]
    assert callback.errors and all("401" in str(e) for e in callback.errors)
    err = capsys.readouterr().err
    assert "push to carol/failing failed" in err and token not in err
    assert hub.commits(repo)[0].title == "Training in progress, step 2"


def test_bad_options_are_typed_errors() -> None:
    from tensorferry.converters.errors import InputError

    with pytest.raises(InputError, match="save_steps"):
        PushToHubCallback("alice/x", save_strategy="steps")
    with pytest.raises(InputError, match="save_strategy"):
        PushToHubCallback("alice/x", save_strategy="batch")


def test_flax_loop_pushes_each_epoch_with_the_hook(hub) -> None:
    import jax

    model, repo = twins.flax_model(), hub.repo("flax-loop")
    module, variables = model.clone(parent=None), model.variables
    x, y = _data()

    def loss(params):
        logits = module.apply({"params": params}, x)
        return -jax.numpy.mean(jax.nn.log_softmax(logits)[np.arange(len(y)), y])

    callback = PushToHubCallback(repo, frameworks=["flax", "pt"], token=hub.token, quiet=True)
    params = variables["params"]
    for epoch in (1, 2):
        grads = jax.grad(loss)(params)
        params = jax.tree_util.tree_map(lambda p, g: p - 0.5 * g, params, grads)
        callback.on_epoch(module.bind({"params": params}), epoch)
        callback.wait()  # each epoch's push lands (a newer one could otherwise replace it)
    callback.on_train_end(module.bind({"params": params}))
    assert not callback.errors
    assert [c.title for c in hub.commits(repo)][:2] == ["Training in progress, epoch 2", "Training in progress, epoch 1"]
    loaded = twins.torch_classes().from_pretrained(repo, token=hub.token)
    trained = np.asarray(module.apply({"params": params}, x))
    assert np.abs(twins.run(loaded, x) - trained).max() <= TOLERANCE


def test_keras_steps_count_optimizer_steps_with_steps_per_execution(hub) -> None:
    """fit calls the batch hook once per execution: pushes follow the optimizer's step count, not the calls."""
    import tf_keras as keras

    model, repo = twins.keras_model(), hub.repo("keras-spe")
    model.compile(optimizer=keras.optimizers.SGD(0.1), steps_per_execution=2,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    callback = PushToHubCallback(repo, save_strategy="steps", save_steps=3, frameworks=["tf"], token=hub.token, quiet=True)
    settle = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: callback.wait())
    x, y = _data()
    model.fit(x, y, epochs=1, batch_size=1, callbacks=[callback, settle], verbose=0)  # 8 steps, 4 executions
    assert not callback.errors and int(model.optimizer.iterations.numpy()) == 8
    # executions end at steps 2, 4, 6, 8: multiples of 3 are crossed at 4 (3) and 6 (6)
    assert [m for m, _ in callback.results] == ["Training in progress, step 4", "Training in progress, step 6",
                                                "End of training"]
