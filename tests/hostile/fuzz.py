"""Fuzz targets, one per codec: bytes in; the reader parses them or raises InputError, nothing else.

``tests/hostile/test_fuzz.py`` runs every target two ways: hypothesis (deterministic mutations of
the committed corpus in ``corpus/<codec>/``, each CI run) and atheris (coverage-guided libFuzzer,
a bounded number of runs seeded with the same corpus). By hand, from ``tests/``:

    python -m hostile.fuzz msgpack -runs=100000 /tmp/new-corpus hostile/corpus/msgpack
"""
from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

CORPUS = Path(__file__).parent / "corpus"
# codec → the file name its bytes are written under (in a folder with good neighbours for index/config)
FILE_NAMES = {"safetensors": "model.safetensors", "h5": "tf_model.h5", "msgpack": "flax_model.msgpack",
              "pickle": "pytorch_model.bin", "index": "model.safetensors.index.json", "config": "config.json"}


def _load_all(reader) -> None:
    for name in reader.infos:
        reader.load(name)


def _same(ours: dict, theirs: dict, path: Path) -> None:
    """What we accepted, the format's own library reads the same (a differential check, not just no-crash)."""
    import numpy as np

    assert set(ours) == set(theirs), (path, sorted(set(ours) ^ set(theirs)))
    for name, arr in ours.items():
        other = np.asarray(theirs[name])
        assert arr.shape == other.shape and arr.dtype == other.dtype, (name, arr.shape, other.shape, arr.dtype, other.dtype)
        assert arr.tobytes() == other.tobytes(), name


def _safetensors(path: Path) -> None:
    from safetensors.numpy import load

    from tensorferry.converters.formats.safetensors_file import SafetensorsFile

    f = SafetensorsFile(path)
    ours = {name: f.load(name) for name in f.infos}
    if not any(d.name in ("bfloat16", "float8_e4m3fn", "float8_e5m2") for _, d in f.infos.values()):  # numpy can't
        _same(ours, load(path.read_bytes()), path)


def _h5(path: Path) -> None:
    from tensorferry.converters.formats.h5_file import KerasH5File

    f = KerasH5File(path)
    _load_all(f)
    for name in f.extras:
        f.load_extra(name)


def _msgpack(path: Path) -> None:
    from tensorferry.converters.formats.msgpack_file import MsgpackFile

    f = MsgpackFile(path)
    ours = {name: f.load(name) for name in f.infos}
    try:
        from flax.serialization import msgpack_restore
    except ImportError:
        return
    flat: dict = {}

    def walk(node, prefix):
        for k, v in node.items():
            walk(v, f"{prefix}{k}/") if isinstance(v, dict) else flat.__setitem__(prefix + k, v)
    walk(msgpack_restore(path.read_bytes()), "")
    _same(ours, flat, path)


def _pickle(path: Path) -> None:
    from tensorferry.converters.formats.pickle_file import PickleFile

    _load_all(PickleFile(path))


def _folder(path: Path) -> None:
    """An index or config among good files: open the whole checkpoint and plan every target."""
    from tensorferry.converters.checkpoint import open_source
    from tensorferry.converters.pipeline import plan_for

    source = open_source(path.parent)
    for name in source.infos:
        source.load(name)
    plan_for(source, ["pt", "tf", "flax"])


TARGETS: dict[str, Callable[[Path], None]] = {
    "safetensors": _safetensors, "h5": _h5, "msgpack": _msgpack, "pickle": _pickle, "index": _folder, "config": _folder,
}


def workdir(codec: str) -> Path:
    """A folder for one codec's inputs: for index and config, with good shards or weights beside them."""
    from .build import B, W, write_st

    root = Path(tempfile.mkdtemp(prefix=f"fuzz-{codec}-"))
    if codec == "index":
        write_st(root / "model-00001-of-00002.safetensors", {"fc.weight": W})
        write_st(root / "model-00002-of-00002.safetensors", {"fc.bias": B})
    elif codec == "config":
        write_st(root / "model.safetensors")
    return root


def check(codec: str, data: bytes, root: Path) -> None:
    """Run one input; InputError is the only acceptable failure (anything else propagates)."""
    from tensorferry.converters.errors import InputError

    path = root / FILE_NAMES[codec]
    path.write_bytes(data)
    try:
        TARGETS[codec](path)
    except InputError:
        pass


def seeds(codec: str) -> list[bytes]:
    return [p.read_bytes() for p in sorted((CORPUS / codec).iterdir())]


def main(argv: list[str]) -> None:
    """``python -m hostile.fuzz CODEC [libFuzzer flags] [corpus dirs]``: coverage-guided, under atheris."""
    import atheris

    codec = argv[1]
    with atheris.instrument_imports(include=["tensorferry"]):
        import tensorferry.converters.checkpoint  # noqa: F401
        import tensorferry.converters.pipeline  # noqa: F401
    root = workdir(codec)
    atheris.Setup([argv[0], *argv[2:]], lambda data: check(codec, data, root))
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
