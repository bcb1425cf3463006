"""Loading one framework's weights from a repo or a folder, converting on the fly when the variant is missing.

``load`` downloads only the variant asked for (through the HF cache), or the repo's source variant
when it lacks that one, and returns the weights in the framework's own structure: a PyTorch state
dict of tensors, Keras weights by name, a Flax params tree.  ``pull`` writes the variant to a folder.

>>> tree = load("fixtures/checkpoints/cnn", "flax")            # a PyTorch folder, converted on the fly
>>> sorted(tree), tree["params"]["conv"]["kernel"].shape
(['batch_stats', 'params'], (3, 3, 3, 8))
>>> weights = load("fixtures/checkpoints/cnn", "tf")
>>> weights["tf_tiny_cnn/conv/kernel"].shape
(3, 3, 3, 8)
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from tensorferry.converters import convert, open_source
from tensorferry.converters.checkpoint import Source
from tensorferry.converters.constants import CONFIG, EXTRA, FILES, parse_frameworks
from tensorferry.converters.errors import InputError
from tensorferry.converters.formats import atomic_outputs

from .hub_io import REPO_ID, Hub, fetch


def load(repo_or_dir: str | Path, framework: str, *, revision: str | None = None, token: str | None = None,
         endpoint: str | None = None, cache_dir: str | None = None, local_files_only: bool = False) -> Any:
    """FRAMEWORK's weights of a Hub repo or a local checkpoint, in that framework's own structure.

    ``pt`` → ``{name: torch.Tensor}`` (needs torch); ``tf`` → ``{Keras weight name: numpy array}``;
    ``flax`` → the nested params tree (collections at the top when the model has batch statistics).
    """
    fw = parse_frameworks([framework], "framework")[0]
    with _variant(repo_or_dir, fw, revision=revision, token=token, endpoint=endpoint, cache_dir=cache_dir,
                  local_files_only=local_files_only) as source:
        return _native(source, fw)


def pull(repo_id: str | Path, framework: str, out: str | Path, **options: Any) -> list[str]:
    """Write FRAMEWORK's variant of a repo (or folder) into OUT, converting when the repo lacks it; the files written."""
    fw = parse_frameworks([framework], "framework")[0]
    out = Path(out)
    with _variant(repo_id, fw, **options) as source:
        folder = source.files[0].parent
        if source.framework == fw and folder.resolve() != out.resolve():  # already this variant: copy its files
            names = [f.name for f in source.files] + [n for n in (FILES[fw].index, CONFIG) if (folder / n).exists()]
            with atomic_outputs() as files:  # all files or none, as convert writes them
                files.prepare(out, [FILES[fw]])
                for name in names:
                    shutil.copyfile(folder / name, files.path(out / name))
            return names
        return convert(source, out, to=[fw]).outputs[fw].files


class _variant:
    """The source holding FRAMEWORK's weights: downloaded if the repo has them, else converted into a temp folder."""

    def __init__(self, where: str | Path, framework: str, **options: Any) -> None:
        self.where, self.framework, self.options, self.tmp = where, framework, options, None

    def __enter__(self) -> Source:
        folder = self._folder()
        try:
            return open_source(folder, self.framework)
        except InputError:
            pass  # that variant is not there: convert the one that is
        self.tmp = Path(tempfile.mkdtemp(prefix="tensorferry-load-"))
        try:
            convert(open_source(folder), self.tmp, to=[self.framework])
            return open_source(self.tmp, self.framework)
        except BaseException:  # __exit__ does not run when __enter__ fails
            self.__exit__()
            raise

    def __exit__(self, *exc: Any) -> None:
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _folder(self) -> Path:
        if Path(self.where).exists():
            return Path(self.where)
        if not REPO_ID.match(str(self.where)) or "/" not in str(self.where):
            raise InputError(self.where, "no such file or folder, and not a Hub repo id (owner/name)")
        o = self.options
        hub = Hub.resolve(o.get("endpoint"), o.get("token"))
        return fetch(str(self.where), hub, [self.framework], revision=o.get("revision"), cache_dir=o.get("cache_dir"),
                     local_files_only=o.get("local_files_only", False), or_source=True)[0]


def _native(source: Source, framework: str) -> Any:
    names = [n for n in source.infos if not n.startswith(EXTRA + "/")]
    if framework == "pt":
        from tensorferry.converters.frameworks.torch import to_tensor

        return {n: to_tensor(np.array(source.load(n))) for n in names}
    if framework == "tf":
        return {n: np.array(source.load(n)) for n in names}
    tree: dict = {}
    for n in names:
        node = tree
        *parents, leaf = n.split("/")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = np.array(source.load(n))
    return tree
