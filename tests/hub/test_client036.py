"""huggingface_hub 0.36 (pinned by transformers 4.57, what TF and Flax users run) against the
local Hub, in its own venv built once under ~/.cache/tensorferry/test-envs/hfhub036."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tensorferry.publish.hub import create_token

VENV = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tensorferry" / "test-envs" / "hfhub036"
SCRIPT = Path(__file__).with_name("client036_script.py")


@pytest.fixture(scope="session")
def py036() -> Path:
    python = VENV / "bin" / "python"
    probe = [str(python), "-c", "import huggingface_hub as h; assert h.__version__.startswith('0.36')"]
    if not python.exists() or subprocess.run(probe, capture_output=True).returncode != 0:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "huggingface_hub==0.36.*"], check=True,
                       timeout=600)
    return python


def test_huggingface_hub_036_round_trip(hub, py036: Path, tmp_path: Path) -> None:
    token = create_token(hub.data_dir, "alice")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    out = subprocess.run([str(py036), str(SCRIPT), hub.url, token, str(tmp_path)], capture_output=True,
                         text=True, timeout=180, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip().splitlines()[-1] == "OK 0.36.2" or out.stdout.strip().splitlines()[-1].startswith("OK 0.36")
