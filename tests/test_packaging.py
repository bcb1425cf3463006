"""pyproject lists packages by hand (the user's layout is mapped into the namespace): keep it complete."""
from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_every_package_folder_is_listed():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(project["packages"])
    found = set()
    for dist_name, folder in project["package-dir"].items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((dist_name, *rel)))
    assert found == listed, {"missing": sorted(found - listed), "stale": sorted(listed - found)}


def test_data_files_are_shipped():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    patterns = {pkg: pats for pkg, pats in data.items()}
    assert "checkpoints/*/*.safetensors" in patterns["tensorferry.fixtures"]
    maps = ROOT / "converters" / "maps"
    for kind in ("kinds", "transformers"):
        assert any(list(maps.glob(p)) for p in patterns["tensorferry.converters.maps"] if kind in p), kind
