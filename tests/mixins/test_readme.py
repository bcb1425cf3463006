"""The README's mixin example runs as written against the local Hub (HF_ENDPOINT, HF_TOKEN)."""
from __future__ import annotations

import re
import sys
import types
from pathlib import Path

README = Path(__file__).parents[2] / "README.md"


def _example() -> str:
    text = README.read_text()
    section = text.split("## Your model classes: push once", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_example_pushes_once_and_loads_in_keras_and_flax(hub, monkeypatch) -> None:
    from tensorferry.publish.hub import create_token

    monkeypatch.setenv("HF_TOKEN", create_token(hub.data_dir, "alice"))
    code = _example()
    assert "push_to_hub(\"alice/tiny\")" in code
    module = types.ModuleType("readme_example")  # linen's dataclasses look their module up
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace = module.__dict__
    exec(compile(code, str(README), "exec"), namespace)  # noqa: S102 - our own README's example
    assert len(hub.commits("alice/tiny")) == 2  # the initial commit and the one push
    assert namespace["keras_model"].built and namespace["torch_model"].conv.out_channels == 16
