"""Conversion streams: anonymous memory stays near the largest tensor, not the model."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent / "benchmarks"))
from _measure import run  # noqa: E402

from tensorferry.converters.formats import safetensors_file  # noqa: E402


def test_peak_anonymous_memory_is_bounded_by_the_largest_tensor(tmp_path):
    # 12 Linear weights of 16 MiB (192 MiB of model); each needs a transpose, so each is copied once.
    specs = [(f"layers.{i}.weight", (2048, 2048), np.dtype("float32")) for i in range(12)]
    rng = np.random.default_rng(0)
    safetensors_file.write(tmp_path / "model.safetensors", specs, lambda n: rng.standard_normal((2048, 2048), dtype=np.float32))
    largest = 2048 * 2048 * 4
    _, baseline = run([sys.executable, "-c", "import tensorferry.publish.cli, tensorferry.converters.pipeline, h5py, msgpack, numpy, tqdm"])
    _, peak = run([sys.executable, "-m", "tensorferry.publish.cli", "convert", str(tmp_path), "--to", "tf,flax",
                   "--out", str(tmp_path / "out"), "--json"], interval=0.005)
    model = 12 * largest
    assert (tmp_path / "out" / "tf_model.h5").stat().st_size > model
    # What conversion adds over the bare interpreter: a few tensors, not the model. By design at most
    # 2 × largest alive (TF's and Flax's, or one and the next) plus one being computed on demand; the
    # slack is the writer threads' stacks and 1 MiB write buffers.
    print(f"baseline {baseline / 2**20:.0f} MiB, peak {peak / 2**20:.0f} MiB, largest tensor {largest / 2**20:.0f} MiB")
    assert peak - baseline <= 3 * largest + (8 << 20), (peak - baseline) / largest


def test_recurrent_layers_stream_one_layer_at_a_time(tmp_path):
    """An LSTM's tensors are computed together (TF sums its biases, Flax splits its gates): memory is bounded
    by the largest layer, not by every recurrent layer held until its side data is written."""
    h = 1024
    specs = []
    for i in range(6):  # 6 layers of 32 MiB: 192 MiB of model
        specs += [(f"rnn{i}.weight_ih_l0", (4 * h, h), np.dtype("float32")), (f"rnn{i}.weight_hh_l0", (4 * h, h), np.dtype("float32")),
                  (f"rnn{i}.bias_ih_l0", (4 * h,), np.dtype("float32")), (f"rnn{i}.bias_hh_l0", (4 * h,), np.dtype("float32"))]
    shapes = {n: s for n, s, _ in specs}
    rng = np.random.default_rng(0)
    safetensors_file.write(tmp_path / "model.safetensors", specs, lambda n: rng.standard_normal(shapes[n], dtype=np.float32))
    layer = 2 * 4 * h * h * 4 + 2 * 4 * h * 4
    _, baseline = run([sys.executable, "-c", "import tensorferry.publish.cli, tensorferry.converters.pipeline, h5py, msgpack, numpy, tqdm"])
    _, peak = run([sys.executable, "-m", "tensorferry.publish.cli", "convert", str(tmp_path), "--to", "tf,flax",
                   "--out", str(tmp_path / "out"), "--json"], interval=0.005)
    print(f"baseline {baseline / 2**20:.0f} MiB, peak {peak / 2**20:.0f} MiB, largest layer {layer / 2**20:.0f} MiB")
    assert (tmp_path / "out" / "flax_model.msgpack").stat().st_size > 6 * layer
    assert peak - baseline <= 3 * layer + (8 << 20), (peak - baseline) / layer


def test_a_tensor_two_targets_share_counts_against_the_budget_at_its_size(tmp_path):
    """TF and Flax share each transposed kernel: the shared entry must be sized as the tensor it is
    (it was 0 once, which let computing ahead ignore the memory budget)."""
    from tensorferry.converters import open_source, pipeline

    plan = pipeline.plan_for(open_source("fixtures/checkpoints/cnn"), ["tf", "flax"])
    variants = [pipeline._variant(fw, plan, tmp_path, 1 << 40, True, False) for fw in ("tf", "flax")]
    keys, made_by, sizes = pipeline._keys(variants)
    shared = {k for (fw, _), k in keys.items() if fw == "tf"} & {k for (fw, _), k in keys.items() if fw == "flax"}
    transposed = [k for k in shared if made_by[k][0].op != "identity"]
    assert transposed, "the fixture has kernels both targets transpose"
    for k in transposed:
        (name, shape, dt), = made_by[k][0].targets
        assert sizes[k] == int(np.prod(shape)) * dt.itemsize > 0, k
