"""PyTorch pickles: code payloads, things that are not state dicts, tensors that are not plain arrays."""
from __future__ import annotations

import pickle

from .build import rewrite_zip_member, torch_tensors, write_pt
from .case import Case, Setup

NAME = "hostile.bin"


class Payload:
    """Runs a command when unpickled: must never run."""

    def __reduce__(self):
        import os

        return (os.system, ("touch PWNED",))


def _obj(make):
    def build(tmp):
        write_pt(tmp / NAME, make())
        return Setup(tmp / NAME)
    return build


def _raw(make):
    def build(tmp):
        (tmp / NAME).write_bytes(make(tmp))
        return Setup(tmp / NAME)
    return build


def _payload(tmp):
    return pickle.dumps({"fc.weight": Payload()}, protocol=2)


def _zip_payload(tmp):
    # A real torch zip whose data.pkl asks for os.system
    write_pt(tmp / NAME, torch_tensors())
    rewrite_zip_member(tmp / NAME, "data.pkl", lambda _: pickle.dumps({"fc.weight": Payload()}, protocol=2))
    return (tmp / NAME).read_bytes()


def _garbled_pkl(tmp):
    write_pt(tmp / NAME, torch_tensors())
    rewrite_zip_member(tmp / NAME, "data.pkl", lambda d: d[: len(d) // 2])
    return (tmp / NAME).read_bytes()


def _truncated(tmp):
    write_pt(tmp / NAME, torch_tensors())
    return (tmp / NAME).read_bytes()[:-100]


def _torch(fn):
    def make():
        import torch

        return fn(torch)
    return make


CASES: list[Case] = [Case("pt-" + key, build, NAME, tuple(words), needs=("torch",)) for key, build, words in [
    ("code-payload", _raw(_payload), ["refused to unpickle"]),
    ("zip-code-payload", _raw(_zip_payload), ["refused to unpickle"]),
    ("garbled-data-pkl", _raw(_garbled_pkl), []),
    ("truncated-zip", _raw(_truncated), []),
    ("list-of-tensors", _obj(lambda: list(torch_tensors().values())), []),
    ("int-keys", _obj(lambda: {i: t for i, t in enumerate(torch_tensors().values())}), []),
    ("nested-state-dicts-ambiguous", _obj(lambda: {"model": torch_tensors(), "ema": torch_tensors()}), ["model", "ema", "--key"]),
    ("tensors-in-lists", _obj(lambda: {k: [v] for k, v in torch_tensors().items()}), ["no entry holds one"]),
    ("state-dict-wrapper-not-dict", _obj(lambda: {"state_dict": [1, 2]}), []),
    ("sparse-tensor", _obj(_torch(lambda t: {"fc.weight": t.eye(4).to_sparse()})), ["fc.weight"]),
    ("complex-tensor", _obj(_torch(lambda t: {"fc.weight": t.zeros(4, 3, dtype=t.complex64)})), ["fc.weight"]),
    ("empty-name", _obj(_torch(lambda t: {"": t.zeros(3)})), []),
]]
