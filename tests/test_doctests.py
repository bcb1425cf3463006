"""Every docstring example in the package runs and says what it claims, so none can rot."""
from __future__ import annotations

import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
PACKAGES = ("tensorferry.converters", "tensorferry.publish", "tensorferry.fixtures")


def _modules() -> list[str]:
    out = []
    for name in PACKAGES:
        package = importlib.import_module(name)
        out.append(name)
        out += [m.name for m in pkgutil.walk_packages(package.__path__, prefix=name + ".")]
    return sorted(out)


MODULES = _modules()


def test_every_module_is_collected() -> None:
    """The walk finds the package's modules, subpackages included (a silent miss would hide examples)."""
    for expected in ("tensorferry.converters.maps.transformers", "tensorferry.converters.verify.run",
                     "tensorferry.publish.hub.storage", "tensorferry.converters.maps.mapgen.match"):
        assert expected in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)  # examples read the shipped fixtures by relative path
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, name, globs=dict(vars(module))):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} failing example(s) in {name}"


def test_benchmark_helper_examples() -> None:
    """The benchmarks' shared measuring helpers (not part of the package) keep their examples true too."""
    import sys

    sys.path.insert(0, str(ROOT / "tests" / "benchmarks"))
    try:
        import _measure
    finally:
        sys.path.remove(str(ROOT / "tests" / "benchmarks"))
    result = doctest.testmod(_measure, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 1 and result.failed == 0
