"""``PushToHubCallback``: push a model while it trains, every framework's variant in one commit per push.

For tf_keras ``fit`` it is a Keras callback (``model.fit(..., callbacks=[callback])``); for PyTorch
and Flax loops the same object is a plain hook: ``callback.on_step(model, step)``,
``callback.on_epoch(model, epoch)``, ``callback.on_train_end(model)``.  The model is one of the
framework mixins' (``TorchHubMixin``, ``KerasHubMixin``, ``FlaxHubMixin``; a Flax model is the
module bound to its current variables).

``checkpoint=True`` adds a ``checkpoint/`` folder to every push's commit (as transformers' TF
callback does, without pickle): the optimizer state (``optimizer.safetensors``, or an optax state
in ``optimizer.msgpack``) and ``trainer_state.json`` (step, epoch, the optimizer's plain values).
Give the hooks the optimizer: ``on_step(model, step, optimizer=opt)`` (PyTorch: the
``torch.optim`` optimizer; Flax: the optax state); ``fit`` uses the compiled model's.
``tensorferry.publish.load_checkpoint(repo, model, optimizer)`` resumes from it (``resume.state``).

Training waits only for the snapshot: the model's own weights, ``config.json`` and card (and the
optimizer state) written to a temporary folder.  A background thread publishes snapshots (convert,
verify, one commit, through ``tensorferry.publish.publisher.publish``), at most one in flight; a newer snapshot replaces one
still queued.  ``on_train_end`` pushes the final weights when they were not pushed yet and returns
once the last push is done.  A failed push is reported (stderr and ``callback.errors``); training
goes on.

Training that never reaches ``on_train_end`` (``fit`` raised, the loop broke out, ``sys.exit``)
still lands the pushes it asked for: at interpreter exit the callback waits up to ``exit_timeout``
seconds for the queued and in-flight pushes, then removes its temporary folders (snapshots and the
publisher's staging, all under one private folder in ``work_dir``, default the system's temp
folder).  ``close()`` does the same at once, and ``with PushToHubCallback(...) as callback:`` calls it.

>>> callback = PushToHubCallback("alice/tiny", save_strategy="steps", save_steps=100)
>>> callback.due_step(200), callback.due_step(250), callback.due_epoch(1)
(True, False, False)
"""
from __future__ import annotations

import atexit
import contextlib
import shutil
import sys
import time
import tempfile
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tensorferry.converters.constants import FRAMEWORKS, MAX_SHARD_SIZE, parse_frameworks
from tensorferry.converters.errors import InputError

from .hub_io import redact


@dataclass
class _Snapshot:
    folder: Path
    model: Any  # for its class's publishing hook and a torch model's module tree (kinds), never its weights
    message: str
    checkpoint: Path | None = None  # the future checkpoint/ folder (checkpoint=True)

    def remove(self) -> None:
        for f in (self.folder, self.checkpoint):
            if f is not None:
                shutil.rmtree(f, ignore_errors=True)


class PushToHubCallback:
    """Push MODEL to REPO_ID during training: each push one commit with every framework in FRAMEWORKS."""

    def __new__(cls, *args: Any, **kwargs: Any) -> "PushToHubCallback":
        # Inside tf_keras' fit the object must be a Keras Callback; importing TensorFlow just for a
        # PyTorch loop would cost seconds, so the Keras flavour is used only when tf_keras is loaded.
        if cls is PushToHubCallback and "tf_keras" in sys.modules:
            cls = _keras_flavour()
        return object.__new__(cls)

    def __init__(self, repo_id: str, save_strategy: str = "epoch", save_steps: int | None = None,
                 frameworks: Sequence[str] | str = FRAMEWORKS, checkpoint: bool = False, *, token: str | None = None,
                 endpoint: str | None = None, private: bool | None = None, revision: str | None = None,
                 max_shard_size: str | int = MAX_SHARD_SIZE, verify: str = "weights", quiet: bool = False,
                 work_dir: str | Path | None = None, exit_timeout: float = 300.0) -> None:
        super().__init__()
        if save_strategy not in ("epoch", "steps"):
            raise InputError("save_strategy", f"{save_strategy!r}: choose epoch or steps")
        if save_strategy == "steps" and (not isinstance(save_steps, int) or save_steps < 1):
            raise InputError("save_steps", "give a positive number of steps with save_strategy='steps'")
        self.checkpoint = bool(checkpoint)
        self.repo_id, self.save_strategy, self.save_steps = repo_id, save_strategy, save_steps
        self.frameworks = parse_frameworks(frameworks, "frameworks")
        self.options = {"token": token, "endpoint": endpoint, "private": private, "revision": revision,
                        "max_shard_size": max_shard_size, "verify": verify}
        self.quiet = quiet
        self.work_dir = Path(work_dir) if work_dir is not None else None  # where the private temp folder goes
        self.exit_timeout = exit_timeout
        self._tmp: Path | None = None  # the private folder (created on the first push, removed by close())
        self._exit_hook: Any = None
        self.results: list[tuple[str, Any]] = []  # (message, PublishResult) of each finished push
        self.replaced = 0  # snapshots dropped for a newer one while queued
        self.errors: list[Exception] = []  # each failed push's error (training went on)
        self._cond = threading.Condition()
        self._queued: _Snapshot | None = None
        self._remove_tmp: weakref.finalize | None = None
        self._busy = False
        self._thread: threading.Thread | None = None
        self._steps = 0  # steps seen (Keras: batches) and whether weights changed since the last snapshot
        self._dirty = False
        self._step: int | None = None  # the counters a checkpoint records: last step, last completed epoch
        self._epoch: int | None = None
        self._optimizer: Any = None  # the last optimizer the hooks were given (for on_train_end)

    # when to push ----------------------------------------------------------------------------------
    def due_step(self, step: int) -> bool:
        """Whether global STEP (counted from 1) is a push under this strategy."""
        return self.save_strategy == "steps" and step % self.save_steps == 0

    def due_epoch(self, epoch: int) -> bool:
        """Whether the end of EPOCH (counted from 1) is a push under this strategy."""
        return self.save_strategy == "epoch"

    # plain hooks (PyTorch, Flax) ---------------------------------------------------------------------
    def on_step(self, model: Any, step: int, optimizer: Any = None) -> None:
        """After optimizer step STEP (from 1): pushes when the strategy says so (with OPTIMIZER's state
        when ``checkpoint=True``)."""
        self._dirty, self._step = True, step
        self._optimizer = optimizer if optimizer is not None else self._optimizer
        if self.due_step(step):
            self.push(model, f"Training in progress, step {step}", optimizer=optimizer)

    def on_epoch(self, model: Any, epoch: int, optimizer: Any = None) -> None:
        """After epoch EPOCH (from 1): pushes when the strategy says so."""
        self._dirty, self._epoch = True, epoch
        self._optimizer = optimizer if optimizer is not None else self._optimizer
        if self.due_epoch(epoch):
            self.push(model, f"Training in progress, epoch {epoch}", optimizer=optimizer)

    def on_train_end(self, model: Any = None, optimizer: Any = None) -> None:
        """Push the final weights unless the last push holds them, wait until every push is done, and remove
        the temporary folders (``close()``)."""
        model = model if _is_model(model) else getattr(self, "model", None)
        if self._dirty and model is not None:
            self.push(model, "End of training", optimizer=optimizer)
        self.close()

    # pushing ---------------------------------------------------------------------------------------------
    def push(self, model: Any, message: str, optimizer: Any = None) -> None:
        """Snapshot MODEL now (its own weights, config, card; with ``checkpoint=True`` OPTIMIZER's state and
        the counters) and queue it for a background push."""
        if not hasattr(model, "_stage"):
            raise InputError(type(model).__name__, "is not a TorchHubMixin, KerasHubMixin or FlaxHubMixin model")
        if self.checkpoint:
            optimizer = self._checkpointed(model, optimizer)
        tmp = self._private_dir()
        snap = _Snapshot(Path(tempfile.mkdtemp(prefix="snapshot-", dir=tmp)), model, message)
        refused = None  # an optimizer state that cannot be saved safely: the caller's to fix, not a failed push
        try:
            if self.checkpoint:
                from .resume import state

                snap.checkpoint = Path(tempfile.mkdtemp(prefix="checkpoint-", dir=tmp))
                try:
                    state.write(model, optimizer, snap.checkpoint, step=self._step, epoch=self._epoch)
                except InputError as e:
                    refused = e
                    raise
            model._stage(snap.folder, max_shard_size=self.options["max_shard_size"], frameworks=self.frameworks)
        except BaseException as e:
            snap.remove()
            if e is refused or not isinstance(e, Exception):
                raise
            # a snapshot that cannot be written (disk full…) is a failed push
            self.errors.append(e)
            self._say(f"snapshot for {self.repo_id} failed ({message}): {redact(e, self.options['token'])}", always=True)
            return
        self._dirty = False
        with self._cond:
            if self._queued is not None:  # replaced by the newer snapshot
                self._queued.remove()
                self.replaced += 1
            self._queued = snap
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="tensorferry-push", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until no push is queued or in flight (at most TIMEOUT seconds); whether that is so."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._queued is not None or self._busy:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self, timeout: float | None = None) -> None:
        """Wait for the queued and in-flight pushes (at most TIMEOUT seconds), then remove the temporary folders.

        What did not finish in time is abandoned and reported (``callback.errors``).  The callback can
        push again afterwards (a new temporary folder is made).

        >>> with PushToHubCallback("alice/tiny", work_dir=tempfile.mkdtemp()) as callback:
        ...     pass  # the training loop
        >>> callback.errors, callback.wait(timeout=0)
        ([], True)
        """
        if not self.wait(timeout):
            with self._cond:
                dropped, self._queued = self._queued, None
            left = "a push" + (" and a queued snapshot" if dropped is not None else "")
            error = TimeoutError(f"{left} to {self.repo_id} did not finish within {timeout:g} s: abandoned")
            self.errors.append(error)
            self._say(str(error), always=True)
        self._unhook()
        with self._cond:
            self._tmp = None
            remove, self._remove_tmp = self._remove_tmp, None
        if remove is not None:
            remove()

    def __enter__(self) -> "PushToHubCallback":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _private_dir(self) -> Path:
        """This callback's temporary folder (snapshots, the publisher's staging), made on first use, with
        the exit hook that removes it."""
        with self._cond:
            if self._tmp is None:
                if self.work_dir is not None:
                    self.work_dir.mkdir(parents=True, exist_ok=True)
                self._tmp = Path(tempfile.mkdtemp(prefix="tensorferry-callback-", dir=self.work_dir))
                # a callback dropped without close() (the exit hook only holds a weak reference) still
                # removes its folder when it is collected or at exit (weakref's atexit handler runs
                # after _run_exit_hooks, which threading calls first and which waits for the pushes)
                self._remove_tmp = weakref.finalize(self, shutil.rmtree, str(self._tmp), True)
            if self._exit_hook is None:
                self._exit_hook = _at_exit(self)
            return self._tmp

    def _unhook(self) -> None:
        hook, self._exit_hook = self._exit_hook, None
        if hook is not None:
            with contextlib.suppress(ValueError):
                _EXIT_HOOKS.remove(hook)

    def _work(self) -> None:
        while True:
            with self._cond:
                if self._queued is None:
                    self._thread = None  # under the lock: a later push starts a new thread
                    return
                snap, self._queued, self._busy = self._queued, None, True
            try:
                extras = None
                if snap.checkpoint is not None:
                    from .resume import state

                    state.seal(snap.checkpoint, snap.folder)  # the weights' digests, hashed here, not in training
                    extras = state.files(snap.checkpoint)
                result = snap.model._publish_staged(snap.folder, self.repo_id, to=self.frameworks, extras=extras,
                                                    commit_message=snap.message, work_dir=snap.folder.parent, **self.options)
                self.results.append((snap.message, result))
                self._say(f"pushed {self.repo_id}: {snap.message} ({result.commit_url or 'no change'})")
            except Exception as e:  # noqa: BLE001 - a failed push must not kill training: it is reported
                self.errors.append(e)
                self._say(f"push to {self.repo_id} failed ({snap.message}): {redact(e, self.options['token'])}", always=True)
            finally:
                snap.remove()
                with self._cond:
                    self._busy = False
                    abandoned = self._tmp != snap.folder.parent  # close() gave up on it and removed the folder
                    self._cond.notify_all()
                if abandoned:  # what the abandoned push made since (the publisher's staging) goes too
                    shutil.rmtree(snap.folder.parent, ignore_errors=True)

    def _checkpointed(self, model: Any, optimizer: Any) -> Any:
        """The optimizer whose state goes with MODEL's push; typed errors for what would make it unusable."""
        optimizer = optimizer if optimizer is not None else self._optimizer
        if optimizer is None and model.framework == "tf":
            optimizer = getattr(model, "optimizer", None)
        if optimizer is None:
            raise InputError("checkpoint", "checkpoint=True needs the optimizer: on_step(model, step, optimizer=opt) "
                                           "(PyTorch: the torch.optim optimizer; Flax: the optax state)")
        self._check_frameworks(model)
        return optimizer

    def _check_frameworks(self, model: Any) -> None:
        if self.checkpoint and model.framework not in self.frameworks:
            raise InputError("checkpoint", f"checkpoint=True resumes from the model's own {model.framework} weights: "
                                           f"add {model.framework!r} to frameworks")

    def _say(self, text: str, always: bool = False) -> None:
        if always or not self.quiet:
            print(f"tensorferry: {text}", file=sys.stderr)


# Exit hooks of the live callbacks.  They run from threading's exit hooks: after the main thread ends
# (an uncaught error included) but BEFORE the interpreter refuses new threads and thread pools
# (huggingface_hub uploads through them), which a plain ``atexit`` hook would run after.
_EXIT_HOOKS: list[Any] = []
_REGISTERED: list[bool] = []


def _at_exit(callback: PushToHubCallback) -> Any:
    import weakref

    ref = weakref.ref(callback)  # a callback dropped by its owner is not kept alive by the hook

    def hook() -> None:
        cb = ref()
        if cb is not None:
            cb.close(cb.exit_timeout)

    if not _REGISTERED:
        _REGISTERED.append(True)
        import concurrent.futures.thread  # noqa: F401 - its exit hook registered first, so it runs after ours

        register = getattr(threading, "_register_atexit", None)
        try:
            (register or atexit.register)(_run_exit_hooks)
        except RuntimeError:  # already shutting down
            atexit.register(_run_exit_hooks)
    _EXIT_HOOKS.append(hook)
    return hook


def _run_exit_hooks() -> None:
    while _EXIT_HOOKS:
        hook = _EXIT_HOOKS.pop()
        try:
            hook()
        except Exception as e:  # noqa: BLE001 - one callback's clean-up must not stop the others'
            print(f"tensorferry: clean-up at exit failed: {e}", file=sys.stderr)


def _is_model(value: Any) -> bool:
    return value is not None and hasattr(value, "_stage")


_FLAVOUR: list[type] = []


def _keras_flavour() -> type:
    """``PushToHubCallback`` as a tf_keras ``Callback``: ``fit`` calls the Keras hooks below."""
    if _FLAVOUR:
        return _FLAVOUR[0]
    import tf_keras

    class KerasPushToHubCallback(PushToHubCallback, tf_keras.callbacks.Callback):
        def on_train_begin(self, logs: dict | None = None) -> None:
            if _is_model(self.model):
                self._check_frameworks(self.model)  # before the first epoch, not at its end
            # a resumed run goes on counting from the optimizer's restored iteration count
            iterations = getattr(getattr(self.model, "optimizer", None), "iterations", None)
            self._steps = int(iterations.numpy()) if iterations is not None else 0

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self._epoch = epoch  # epochs completed (Keras counts from 0; fit(initial_epoch=…) starts there)

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            # with steps_per_execution > 1 fit calls this once per execution, not per step: the optimizer's
            # count is the true step, and a push is due when it crossed a multiple of save_steps
            iterations = getattr(getattr(self.model, "optimizer", None), "iterations", None)
            prev, now = self._steps, (int(iterations.numpy()) if iterations is not None else self._steps + 1)
            self._steps, self._dirty, self._step = now, True, now
            if self.save_strategy == "steps" and prev // self.save_steps != now // self.save_steps:
                self.push(self.model, f"Training in progress, step {now}")

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self.on_epoch(self.model, epoch + 1)  # Keras counts epochs from 0

        def on_train_end(self, logs: Any = None) -> None:
            PushToHubCallback.on_train_end(self, logs if _is_model(logs) else self.model)

    KerasPushToHubCallback.__name__ = KerasPushToHubCallback.__qualname__ = "PushToHubCallback"
    _FLAVOUR.append(KerasPushToHubCallback)
    return KerasPushToHubCallback
