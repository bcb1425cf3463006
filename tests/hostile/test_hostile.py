"""Every generated hostile case through the CLI in-process: exit 2, the file named, nothing written anywhere."""
from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest

from tensorferry.publish.cli import main

from . import cases_cli, cases_config, cases_h5, cases_index, cases_msgpack, cases_pickle, cases_safetensors
from .build import SECRET

ALL = (cases_safetensors.CASES + cases_h5.CASES + cases_msgpack.CASES + cases_pickle.CASES + cases_index.CASES
       + cases_config.CASES + cases_cli.CASES)


def snapshot(root: Path) -> dict[str, object]:
    """Every entry under ``root``: kind and content digest (size and mtime for big sparse files)."""
    out: dict[str, object] = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        rel = str(p.relative_to(root))
        if stat.S_ISREG(st.st_mode):
            out[rel] = (st.st_size, st.st_mtime_ns) if st.st_size > 2**20 else hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            out[rel] = stat.S_IFMT(st.st_mode)
    return out


def test_there_are_at_least_100_cases_with_unique_ids():
    ids = [c.id for c in ALL]
    assert len(ids) >= 100 and len(set(ids)) == len(ids), len(ids)
    prefixes = {i.split("-", 1)[0] for i in ids}
    assert prefixes == {"st", "h5", "mp", "pt", "index", "config", "cli"}


@pytest.mark.timeout(60)  # a FIFO opened for reading would block forever
@pytest.mark.parametrize("case", ALL, ids=lambda c: c.id)
def test_hostile_case(case, tmp_path, monkeypatch, capsys):
    if case.missing():
        pytest.skip(f"needs {', '.join(case.missing())}")
    monkeypatch.chdir(tmp_path)  # a pickle payload would drop its file here
    setup = case.build(tmp_path)
    out = setup.out or tmp_path / "out"
    before = snapshot(tmp_path)
    try:
        code = main(["convert", str(setup.src), "--out", str(out), *setup.args])
    except SystemExit as e:  # argparse exits instead of returning
        code = f"SystemExit({e.code})"
    err = capsys.readouterr().err
    assert code == 2, (code, err)
    assert "internal error" not in err and "Traceback" not in err, err
    named = setup.names or case.names or Path(str(setup.src)).name
    assert named in err, (named, err)
    for word in case.words:
        assert word in err, (word, err)
    # Nothing appeared or changed: no final file, no .partial, no payload's file, no copied secret.
    assert snapshot(tmp_path) == before
    assert not list(tmp_path.rglob("*.partial"))
    if out.is_dir():
        assert not any(SECRET[:16] in p.read_bytes() for p in out.rglob("*") if p.is_file())
