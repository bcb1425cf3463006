"""tensorferry's TF/Flax files load into transformers 4.57.6 classes exactly as transformers' own
``from_pt`` conversion would, and files saved by transformers come back to PyTorch bit for bit.

Runs in the project environment; transformers runs in the second environment (see conftest.py).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from tx_cases import CASES

TOLERANCE = 5e-5
_TF_IDS = [c[0] for c in CASES if c[3]]
_FLAX_IDS = [c[0] for c in CASES if c[4]]


@pytest.mark.parametrize("case", _TF_IDS)
def test_tf_loads_like_from_pt(loaded: dict, case: str) -> None:
    r = loaded[case]["tf"]
    assert r["weights"] > 0
    assert r["missing"] == [] and r["unexpected"] == [] and r["mismatched"] == []
    assert r["differ"] == [], f"weights differ from transformers' from_pt: {r['differ'][:5]}"
    assert r["max_delta"] <= TOLERANCE


@pytest.mark.parametrize("case", _FLAX_IDS)
def test_flax_loads_like_from_pt(loaded: dict, case: str) -> None:
    r = loaded[case]["flax"]
    assert r["weights"] > 0
    assert r["warnings"] == [], r["warnings"]
    assert r["tree_keys_equal"] and r["loaded_equal"]
    assert r["differ"] == [], f"weights differ from transformers' from_pt: {r['differ'][:5]}"
    assert r["max_delta"] <= TOLERANCE


def _pytorch_only(config: Path, keys: set[str]) -> set[str]:
    """Keys the map says have neither a TF nor a Flax counterpart (e.g. ``num_batches_tracked``)."""
    import json

    from tensorferry.converters.maps.transformers import find_map

    m = find_map(json.loads(config.read_text()))
    tf = m.from_canonical("tf", {k: ((1,), "F32") for k in keys}) if "tf" in m.frameworks else {}
    fx = m.from_canonical("flax", {k: ((1,), "F32") for k in keys}) if "flax" in m.frameworks else {}
    return {k for k in keys if tf.get(k) is None and fx.get(k) is None}


def _assert_same_safetensors(got: Path, want: Path) -> None:
    a, b = load_file(str(got)), load_file(str(want))
    # A file saved by transformers' TF/Flax classes cannot hold PyTorch-only buffers; everything
    # else must come back, bit for bit.
    absent = set(b) - set(a)
    assert absent == _pytorch_only(want.parent / "config.json", absent) and set(a) <= set(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        assert a[k].tobytes() == b[k].tobytes(), f"{k} is not bit-exact"


@pytest.mark.parametrize(("case", "framework"), [(c, "tf") for c in _TF_IDS] + [(c, "flax") for c in _FLAX_IDS])
def test_transformers_files_back_to_pytorch(tiny_models: Path, tmp_path: Path, case: str, framework: str) -> None:
    from tensorferry.converters import convert

    src = tiny_models / case / f"tx_{framework}"
    convert(src, tmp_path, to=["pt"])
    _assert_same_safetensors(tmp_path / "model.safetensors", tiny_models / case / "pt" / "model.safetensors")


@pytest.mark.parametrize("case", [c for c in _TF_IDS if c in _FLAX_IDS])
def test_tf_to_flax_matches_transformers(tiny_models: Path, tmp_path: Path, case: str) -> None:
    """TF ↔ Flax directly: transformers' own TF file becomes its own Flax file, leaf for leaf."""
    from flax.serialization import msgpack_restore
    from flax.traverse_util import flatten_dict

    from tensorferry.converters import convert

    convert(tiny_models / case / "tx_tf", tmp_path, to=["flax"])
    a, b = ({k: np.asarray(v) for k, v in flatten_dict(msgpack_restore((folder / "flax_model.msgpack").read_bytes()), sep="/").items()}
            for folder in (tmp_path, tiny_models / case / "tx_flax"))
    assert sorted(a) == sorted(b)
    assert all(np.array_equal(a[k], b[k]) and a[k].dtype == b[k].dtype for k in b)
