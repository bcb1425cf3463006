"""The suite's rule for skips: with TENSORFERRY_NO_SKIPS=1 (tests/run.sh, CI) a skipped test fails.

The suite has four conditional ``pytest.skip`` calls, all in tests/hostile, each naming its reason
(no torch, no atheris, no tmpfs without root, a hostile case's missing package).  This checks that
the hook in tests/conftest.py really turns such a skip into a failure, so CI cannot count one as a pass.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

SKIPPING = '''
import pytest

def test_needs_something_absent():
    pytest.skip("needs a package this machine lacks")
'''


def _run(folder: Path, no_skips: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TENSORFERRY_NO_SKIPS"}
    if no_skips is not None:
        env["TENSORFERRY_NO_SKIPS"] = no_skips
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(folder)],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=300)


def test_a_skip_fails_the_run_where_nothing_may_skip(tmp_path: Path) -> None:
    shutil.copy(Path(__file__).parent / "conftest.py", tmp_path / "conftest.py")  # the suite's own hook
    (tmp_path / "test_skipping.py").write_text(SKIPPING)
    allowed = _run(tmp_path, None)
    assert allowed.returncode == 0 and "1 skipped" in allowed.stdout, allowed.stdout[-2000:]
    strict = _run(tmp_path, "1")
    assert strict.returncode == 1 and "1 failed" in strict.stdout, strict.stdout[-2000:]
    assert "skipped where nothing may skip (TENSORFERRY_NO_SKIPS=1)" in strict.stdout
    assert "needs a package this machine lacks" in strict.stdout  # the reason is kept
