"""Fixtures for the transformers round trips.

transformers 4.57.6 cannot share the project's environment (it needs huggingface_hub<1.0), so the
`tx_env` fixture creates the second environment with `python -m tensorferry.converters.maps.mapgen setup`
(idempotent: a ready environment is reused, a half-made one is rebuilt) and the tests call
`tx_helper.py` inside it.  tensorferry's own conversions run here, in the project environment.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from tx_cases import CASE_IDS, case_dicts

HELPER = Path(__file__).with_name("tx_helper.py")

@pytest.fixture(scope="session")
def tx_python() -> Path:
    """The transformers 4.57.6 environment's python, created on first use (several minutes once)."""
    from tensorferry.converters import envs as env

    return env.setup(quiet=True)


@pytest.fixture(scope="session")
def tx_run(tx_python: Path):
    """``tx_run(command, spec, tmp)``: run tx_helper.py in the transformers environment."""
    return lambda command, spec, tmp, timeout=900: run_helper(tx_python, command, spec, tmp, timeout)


def run_helper(tx_python: Path, command: str, spec: dict, tmp: Path, timeout: int = 900) -> dict:
    """Run ``tx_helper.py COMMAND`` in the second environment; its last stdout line is JSON."""
    from tensorferry.converters import envs as env

    spec_file = tmp / f"{command}-spec.json"
    spec_file.write_text(json.dumps(spec))
    p = env.run_in_env([str(HELPER), command, str(spec_file)], capture_output=True, text=True, timeout=timeout)
    if p.returncode:
        raise AssertionError(f"tx_helper {command} failed:\n{p.stderr[-4000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def tiny_models(tx_python: Path, tmp_path_factory) -> Path:
    """Tiny PT models of every case plus transformers' own ``from_pt`` TF/Flax files, under one root."""
    root = tmp_path_factory.mktemp("tx-models")
    made = run_helper(tx_python, "make", {"root": str(root), "cases": case_dicts()}, root)
    assert set(made) == set(CASE_IDS)
    return root


@pytest.fixture(scope="session")
def converted(tiny_models: Path, tmp_path_factory) -> Path:
    """tensorferry's TF and Flax conversions of each tiny PT model (project environment, public API)."""
    from tensorferry.converters import convert

    out = tmp_path_factory.mktemp("tf-converted")
    for case in case_dicts():
        to = [fw for fw in ("tf", "flax") if case[fw]]
        convert(tiny_models / case["id"] / "pt", out / case["id"], to=to)
    return out


@pytest.fixture(scope="session")
def loaded(tx_python: Path, tiny_models: Path, converted: Path, tmp_path_factory) -> dict:
    """What transformers' TF/Flax classes say when they load tensorferry's files."""
    tmp = tmp_path_factory.mktemp("tx-check")
    return run_helper(tx_python, "check", {"root": str(tiny_models), "converted": str(converted),
                                           "cases": case_dicts()}, tmp)


def pytest_report_header(config) -> str:
    return f"transformers round trips: {len(CASE_IDS)} architectures; helper python from {sys.executable}"
