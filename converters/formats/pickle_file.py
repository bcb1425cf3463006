"""PyTorch pickles (``pytorch_model.bin``, ``*.pt``, ``*.pth``), read-only and never unpickled unsafely.

Only ``torch.load(..., weights_only=True)`` touches them: its restricted unpickler refuses any
global that is not a tensor-building function, so a pickle carrying code is an error, not an
execution.  ``mmap=True`` keeps the storages on disk for zip-format files.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from .. import dtypes
from ..errors import InputError
from ..selection import Found, find_state_dict
from . import limits


def _torch():
    try:
        import torch
    except ImportError:
        raise InputError("torch", "reading PyTorch pickles (.bin/.pt/.pth) needs torch: pip install 'tensorferry[torch]'") from None
    return torch


class PickleFile:
    """A PyTorch state dict pickle, or a training checkpoint holding one (``key`` chooses it).

    ``ties`` maps each alias to the first name sharing its data; ``found`` says where the state
    dict was and what was ignored or stripped.

    >>> import tempfile, torch
    >>> path = tempfile.mkdtemp() + "/pytorch_model.bin"
    >>> torch.save({"epoch": 3, "state_dict": {"fc.weight": torch.zeros(2, 3)}}, path)
    >>> f = PickleFile(path)
    >>> f.infos["fc.weight"], f.found.key
    (((2, 3), dtype('float32')), 'state_dict')
    """

    def __init__(self, path: str | Path, key: str | None = None) -> None:
        self.path = limits.regular_file(path)
        torch = _torch()
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(self.path))
        except Exception as e:  # torch raises UnpicklingError, RuntimeError, EOFError... for bad files
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            if "weights_only" in str(e) or "Unsupported global" in str(e):
                raise InputError(self.path, f"refused to unpickle: the pickle asks for code, not only tensors ({msg})") from None
            raise InputError(self.path, f"not a readable PyTorch checkpoint ({type(e).__name__}: {msg})") from None
        # A training checkpoint holds the state dict among other things: find it (see ``selection``).
        self.found: Found
        state, self.found = find_state_dict(state, key, is_tensor=lambda v: isinstance(v, torch.Tensor), where=self.path)
        self._tensors: dict[str, object] = {}
        self.ties: dict[str, str] = {}
        seen: dict[tuple, str] = {}
        for name, t in state.items():
            limits.tensor_name(name, self.path)
            what = f"tensor {name!r}"
            if not isinstance(t, torch.Tensor):
                raise InputError(self.path, f"not a state dict: {what} is a {type(t).__name__}, not a tensor")
            if t.layout != torch.strided or t.is_quantized or t.is_nested:
                raise InputError(self.path, f"{what} is a {t.layout} tensor{' (quantized)' if t.is_quantized else ''}: only dense tensors convert")
            limits.tensor_dtype(_np_dtype(t.dtype, self.path, what), self.path, what)
            limits.nbytes(limits.shape(tuple(t.shape), self.path, what), _np_dtype(t.dtype, self.path, what), self.path, what)
            storage = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), tuple(t.stride()), t.dtype)
            if t.numel() and storage in seen:
                self.ties[name] = seen[storage]
                continue
            seen[storage] = name
            self._tensors[name] = t

    @property
    def infos(self) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        return {k: (tuple(t.shape), _np_dtype(t.dtype)) for k, t in self._tensors.items()}

    def load(self, name: str) -> np.ndarray:
        t = self._tensors[name].contiguous()
        dt = _np_dtype(t.dtype)
        if dt.name in dtypes.ML_DTYPES:
            torch = _torch()
            return t.view(torch.uint8).numpy().view(dt).reshape(tuple(t.shape))
        return t.numpy()


def _np_dtype(torch_dtype, where: object = "torch dtype", what: str = "") -> np.dtype:
    name = str(torch_dtype).removeprefix("torch.")
    try:
        return dtypes.from_name(name, where)
    except InputError:
        raise InputError(where, f"{what} has dtype {name}: not a tensor type tensorferry converts") from None
