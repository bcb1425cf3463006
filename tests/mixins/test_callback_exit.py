"""Training that never reaches ``on_train_end``: the pushes it asked for still land and no temporary
folder is left (the exit hook), ``close()`` / ``with`` do the same at once, in a caller-chosen ``work_dir``."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tensorferry.publish import PushToHubCallback

from . import twins

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    import sys, torch
    from tests.mixins import twins
    from tensorferry.publish import PushToHubCallback

    model = twins.torch_model()
    callback = PushToHubCallback(sys.argv[1], save_strategy="steps", save_steps=2, frameworks=["pt", "tf"],
                                 token=sys.argv[2], quiet=True)
    x, y = twins.tokens(batch=4, seed=3), torch.tensor([0, 1, 2, 3])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    for step in range(1, 4):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        callback.on_step(model, step)
        if step == 2:
            raise RuntimeError("the loss went NaN")  # on_train_end is never reached
""")


def test_a_loop_that_dies_before_on_train_end_still_lands_its_push_and_leaves_no_temp_folder(hub, tmp_path) -> None:
    repo, tmp = hub.repo("crash"), tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp), "HF_ENDPOINT": hub.url, "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-c", SCRIPT, repo, hub.token], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 1 and "the loss went NaN" in run.stderr, run.stderr[-2000:]
    assert hub.commits(repo)[0].title == "Training in progress, step 2"
    assert {"model.safetensors", "tf_model.h5"} <= set(hub.api().list_repo_files(repo))
    assert not [p.name for p in tmp.iterdir() if p.name.startswith("tensorferry")], list(tmp.iterdir())


def test_with_block_waits_for_the_push_and_cleans_its_work_dir(hub, tmp_path) -> None:
    repo, work = hub.repo("with"), tmp_path / "work"
    model = twins.torch_model()
    with PushToHubCallback(repo, frameworks=["pt"], token=hub.token, quiet=True, work_dir=work) as callback:
        callback.on_epoch(model, 1)
        assert [p.name for p in work.iterdir()][0].startswith("tensorferry-callback-")  # snapshots go there
    assert [m for m, _ in callback.results] == ["Training in progress, epoch 1"] and not callback.errors
    assert hub.commits(repo)[0].title == "Training in progress, epoch 1"
    assert list(work.iterdir()) == []


def test_close_with_a_timeout_abandons_what_is_left_and_says_so(hub, tmp_path) -> None:
    model = twins.torch_model()
    callback = PushToHubCallback(hub.repo("timeout"), frameworks=["pt", "tf", "flax"], token=hub.token, quiet=True,
                                 work_dir=tmp_path)
    callback.push(model, "first")
    callback.push(model, "second")
    callback.close(timeout=0)
    worker = callback._thread
    if worker is not None:  # the abandoned push runs on; once it ends, nothing of it may be left
        worker.join(timeout=120)
    # The abandoned push may still fail after close (its folder is gone) and say so after the timeout.
    timeouts = [e for e in callback.errors if isinstance(e, TimeoutError)]
    assert len(timeouts) == 1 and "abandoned" in str(timeouts[0]) and callback.errors[0] is timeouts[0]
    assert list(tmp_path.iterdir()) == []


def test_a_callback_dropped_without_close_removes_its_folder(hub, tmp_path) -> None:
    """The exit hook holds the callback weakly, so a callback its owner drops after its pushes (no
    close(), no with-block) would leave its empty folder behind: it is removed when collected."""
    import gc

    repo, work = hub.repo("dropped"), tmp_path / "work"
    callback = PushToHubCallback(repo, frameworks=["pt"], token=hub.token, quiet=True, work_dir=work)
    callback.on_epoch(twins.torch_model(), 1)
    worker = callback._thread  # its frame holds the callback until the thread has returned
    assert callback.wait(timeout=120) and not callback.errors
    assert [p.name for p in work.iterdir()][0].startswith("tensorferry-callback-")
    if worker is not None:
        worker.join(timeout=60)
    del callback
    gc.collect()
    assert list(work.iterdir()) == []
    assert hub.commits(repo)[0].title == "Training in progress, epoch 1"
