"""PyTorch: load a checkpoint into a live ``torch.nn.Module``, strictly by name.

>>> from tensorferry.fixtures import cnn
>>> model = cnn.torch_model(cnn.CONFIG)
>>> load_state(model, "fixtures/checkpoints/cnn")
{'missing': [], 'unexpected': []}
"""
from __future__ import annotations

import numpy as np
import torch

from ..checkpoint import open_source


def to_tensor(arr: np.ndarray) -> torch.Tensor:
    """A tensor sharing ``arr``'s data where it can; bfloat16 goes through its bits.

    >>> import ml_dtypes
    >>> to_tensor(np.ones(2, ml_dtypes.bfloat16)).dtype
    torch.bfloat16
    >>> to_tensor(np.array(7)).shape          # a 0-d buffer stays 0-d
    torch.Size([])
    """
    arr = np.require(arr, requirements="C")  # unlike ascontiguousarray, keeps 0-d arrays 0-d
    if arr.dtype.name == "bfloat16":  # torch cannot take ml_dtypes' bfloat16 directly
        return torch.from_numpy(arr.view(np.uint16)).view(torch.bfloat16)
    return torch.from_numpy(arr)


def load_state(model: torch.nn.Module, path: str) -> dict[str, list[str]]:
    """Load PATH's PyTorch weights into MODEL; returns ``{"missing": [], "unexpected": []}``, else raises.

    Strict by name, except parameters tied to a loaded one (written once, as transformers does).
    The model is put in eval mode.
    """
    source = open_source(path, "pt")
    state = {n: to_tensor(source.load(n)) for n in source.infos}
    result = model.load_state_dict(state, strict=False)
    tensors = dict(model.named_parameters(remove_duplicate=False)) | dict(model.named_buffers(remove_duplicate=False))
    loaded_ptrs = {tensors[n].data_ptr() for n in state if n in tensors}
    missing = [n for n in result.missing_keys if tensors[n].data_ptr() not in loaded_ptrs and n not in source.ties]
    report = {"missing": missing, "unexpected": list(result.unexpected_keys)}
    if missing or report["unexpected"]:
        raise ValueError(f"{path}: does not match the model: missing {missing[:8]}, unexpected {report['unexpected'][:8]}")
    model.eval()
    return report
