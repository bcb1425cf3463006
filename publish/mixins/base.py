"""What the three framework mixins share: save every variant, push in one commit, load any variant.

``FrameworkHubMixin`` is a ``huggingface_hub.ModelHubMixin``: config capture from ``__init__``
arguments, ``coders`` and card metadata from class keywords are huggingface_hub's own.  Each
framework's subclass (``torch``, ``keras``, ``flax``) says only how to build its model, write its
own weights and read a file of its own layout.  Here:

* ``save_pretrained(dir, frameworks=…)`` → the model's own weights, then tensorferry's ``convert``
  writes the other variants from them (streamed), verified at weights level;
* ``push_to_hub`` → the own variant, ``config.json`` and the mixin's card saved to a temporary
  folder, then ``tensorferry.publish.publisher.publish``: convert, verify, ONE ``create_commit``;
* ``from_pretrained`` → ``config.json`` and the own framework's files downloaded (another variant
  when the repo lacks it) from ``HF_ENDPOINT``, then loaded directly when the names are the
  model's own, else through model-guided conversion (``convert(models={fw: model})``), which pairs
  layers by structure — so a Keras or Flax twin with auto-named layers loads a PyTorch push.

>>> sorted(OPTIONS)
['frameworks', 'max_shard_size']
>>> preferred("flax", ["config.json", "model.safetensors", "tf_model.h5"])
'pt'
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, ClassVar

from huggingface_hub import ModelHubMixin

from tensorferry.converters.constants import CONFIG, FILES, FRAMEWORKS, MAX_SHARD_SIZE, STANDARD, parse_frameworks
from tensorferry.converters.errors import InputError, VerificationError
from tensorferry.publish.files import variant_files

OPTIONS = {"frameworks": FRAMEWORKS, "max_shard_size": MAX_SHARD_SIZE}
# What a twin loads when its own variant is missing: the other frameworks, nearest layout first.
FALLBACK = {"pt": ("tf", "flax"), "tf": ("pt", "flax"), "flax": ("pt", "tf")}
# The mixins' card (huggingface_hub's default names PyTorchModelHubMixin); the publisher adds its own section.
TEMPLATE = """
---
{{ card_data }}
---

This model was pushed to the Hub with [tensorferry](https://pypi.org/project/tensorferry/)'s framework mixins:
one repository with its weights for {{ tensorferry_frameworks }}, loaded with `Model.from_pretrained`.
- Code: {{ repo_url | default("[More Information Needed]", true) }}
- Paper: {{ paper_url | default("[More Information Needed]", true) }}
- Docs: {{ docs_url | default("[More Information Needed]", true) }}
"""
_local = threading.local()  # save_pretrained's options, seen by _save_pretrained (the mixin passes none)
CARD_NAMES = {"pt": "PyTorch", "tf": "TensorFlow/Keras", "flax": "JAX/Flax"}  # as the card names the frameworks


def framework_list(frameworks: Sequence[str]) -> str:
    """FRAMEWORKS as the card's sentence names them.

    >>> framework_list(["pt", "flax"]), framework_list(["pt", "tf", "flax"])
    ('PyTorch and JAX/Flax', 'PyTorch, TensorFlow/Keras and JAX/Flax')
    """
    names = [CARD_NAMES[fw] for fw in FRAMEWORKS if fw in frameworks]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def preferred(framework: str, files: Sequence[str]) -> str | None:
    """The variant to load for FRAMEWORK among a repo's FILES: its own, else the nearest other one."""
    names = set(files)
    for fw in (framework, *FALLBACK[framework]):
        if any(f.single in names or f.index in names for f_fw, f in STANDARD if f_fw == fw and f is FILES[fw]):
            return fw
    return None


@contextlib.contextmanager
def _options(**values: Any) -> Iterator[dict]:
    before = getattr(_local, "options", None)
    _local.options = {**OPTIONS, **{k: v for k, v in values.items() if v is not None}}
    try:
        yield _local.options
    finally:
        _local.options = before


def _current() -> dict:
    return getattr(_local, "options", None) or dict(OPTIONS)


class FrameworkHubMixin(ModelHubMixin, model_card_template=TEMPLATE, tags=["tensorferry"]):
    """Shared template: subclasses set ``framework`` and implement the framework hooks at the end."""

    framework: ClassVar[str] = ""

    # saving -----------------------------------------------------------------------------------------
    def save_pretrained(self, save_directory: str | Path, *, config: dict | Any | None = None, repo_id: str | None = None,
                        push_to_hub: bool = False, model_card_kwargs: dict[str, Any] | None = None,
                        frameworks: Sequence[str] | str | None = None, max_shard_size: str | int | None = None,
                        **push_to_hub_kwargs: Any) -> str | None:
        """Write ``config.json``, the card and every variant in FRAMEWORKS (default all three) to SAVE_DIRECTORY.

        The standard files of the frameworks not in FRAMEWORKS (an earlier save's) are removed, so the
        folder never holds weights other than the model's.

        The model's own weights are written by its framework (``model.safetensors`` sharded past
        ``max_shard_size``), the others converted from them by tensorferry and checked tensor by tensor.
        """
        with _options(frameworks=frameworks, max_shard_size=max_shard_size):
            if push_to_hub:
                push_to_hub_kwargs.update(frameworks=frameworks, max_shard_size=max_shard_size)
            return super().save_pretrained(save_directory, config=config if config is not None else self._hub_config(),
                                           repo_id=repo_id, push_to_hub=push_to_hub, model_card_kwargs=model_card_kwargs,
                                           **push_to_hub_kwargs)

    def generate_model_card(self, *args: Any, **kwargs: Any) -> Any:
        """huggingface_hub's card, naming the frameworks the repo gets (a push's, else save_pretrained's)."""
        frameworks = getattr(_local, "card_frameworks", None) or _current()["frameworks"]
        kwargs.setdefault("tensorferry_frameworks", framework_list(parse_frameworks(frameworks, "frameworks")))
        return super().generate_model_card(*args, **kwargs)

    def _hub_config(self) -> dict | Any | None:
        """The config to save: what ``ModelHubMixin`` captured from ``__init__`` (Flax overrides it)."""
        return self._hub_mixin_config

    def _save_pretrained(self, save_directory: Path) -> None:
        options = _current()
        wanted = parse_frameworks(options["frameworks"], "frameworks")
        own = self.framework
        with tempfile.TemporaryDirectory(prefix="tensorferry-save-") as tmp:
            own_dir = Path(tmp)
            self._write_weights(own_dir, options["max_shard_size"])
            others = [fw for fw in wanted if fw != own]
            if others:
                _convert_and_check(own_dir, save_directory, others, options["max_shard_size"], self._structure())
            if own in wanted:
                for old in variant_files(save_directory, own):
                    old.unlink()
                for f in sorted(own_dir.iterdir()):
                    shutil.move(str(f), save_directory / f.name)
            # an earlier save's variant of a framework not written now would hold other weights, which
            # from_pretrained would load without a word: its standard files go (nothing else is touched)
            for fw in FRAMEWORKS:
                if fw not in wanted:
                    for stale in variant_files(save_directory, fw):
                        stale.unlink()

    def push_to_hub(self, repo_id: str, *, config: dict | Any | None = None, commit_message: str | None = None,
                    commit_description: str | None = None, private: bool | None = None, token: str | None = None,
                    branch: str | None = None, revision: str | None = None, create_pr: bool | None = None,
                    allow_patterns: list[str] | str | None = None, ignore_patterns: list[str] | str | None = None,
                    delete_patterns: list[str] | str | None = None, model_card_kwargs: dict[str, Any] | None = None,
                    frameworks: Sequence[str] | str | None = None, max_shard_size: str | int | None = None,
                    verify: str = "weights", endpoint: str | None = None) -> str | None:
        """Publish config, card and every framework's variant to REPO_ID in ONE commit; returns the commit URL,
        or None when the repo already held identical files (no commit is made).

        Goes through ``tensorferry.publish.publisher.publish`` (convert, verify, one ``create_commit``);
        the endpoint is ``HF_ENDPOINT`` unless ``endpoint`` is given.  ``branch`` (huggingface_hub's name)
        and ``revision`` (tensorferry's) are the same option.
        """
        return self._publish(repo_id, config=config, commit_message=commit_message, commit_description=commit_description,
                             private=private, token=token, revision=revision or branch, create_pr=create_pr,
                             allow_patterns=allow_patterns, ignore_patterns=ignore_patterns, delete_patterns=delete_patterns,
                             model_card_kwargs=model_card_kwargs, frameworks=frameworks, max_shard_size=max_shard_size,
                             verify=verify, endpoint=endpoint).commit_url

    def _publish(self, repo_id: str, *, config: Any = None, frameworks: Sequence[str] | str | None = None,
                 max_shard_size: str | int | None = None, model_card_kwargs: dict | None = None, **publish_kwargs: Any) -> Any:
        """``push_to_hub`` returning the whole ``PublishResult``."""
        with tempfile.TemporaryDirectory(prefix="tensorferry-push-") as tmp:
            self._stage(Path(tmp), config=config, model_card_kwargs=model_card_kwargs, max_shard_size=max_shard_size,
                        frameworks=frameworks)
            return self._publish_staged(Path(tmp), repo_id, to=frameworks, max_shard_size=max_shard_size, **publish_kwargs)

    def _stage(self, folder: Path, *, config: Any = None, model_card_kwargs: dict | None = None,
               max_shard_size: str | int | None = None, frameworks: Sequence[str] | str | None = None) -> None:
        """The model's own variant, ``config.json`` and card (naming FRAMEWORKS, the push's) in FOLDER: what a
        push converts and publishes (the callback's snapshot: the only part that waits for the weights)."""
        before = getattr(_local, "card_frameworks", None)
        _local.card_frameworks = frameworks or OPTIONS["frameworks"]
        try:
            self.save_pretrained(folder, config=config, model_card_kwargs=model_card_kwargs, frameworks=[self.framework],
                                 max_shard_size=max_shard_size)
        finally:
            _local.card_frameworks = before

    def _publish_staged(self, folder: Path, repo_id: str, *, to: Sequence[str] | str | None = None,
                        max_shard_size: str | int | None = None, allow_patterns: Any = None, ignore_patterns: Any = None,
                        delete_patterns: Any = None, create_pr: bool | None = None, **publish_kwargs: Any) -> Any:
        """Publish a staged FOLDER: the publisher converts the other variants, verifies them, makes ONE commit."""
        from tensorferry.publish.publisher import publish

        if delete_patterns:
            raise InputError("delete_patterns", "not supported: tensorferry replaces its own files and leaves the rest")
        as_list = (lambda p: [p] if isinstance(p, str) else p)
        return publish(folder, repo_id, to=parse_frameworks(to or OPTIONS["frameworks"], "frameworks"),
                       max_shard_size=max_shard_size or OPTIONS["max_shard_size"], create_pr=bool(create_pr),
                       allow_patterns=as_list(allow_patterns), ignore_patterns=as_list(ignore_patterns),
                       structure=self._structure(), quiet=True, **publish_kwargs)

    # loading ----------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, *, force_download: bool = False,
                        token: str | bool | None = None, cache_dir: str | Path | None = None, local_files_only: bool = False,
                        revision: str | None = None, **model_kwargs: Any) -> Any:
        """Rebuild the model from ``config.json`` (MODEL_KWARGS override it) and load its weights.

        A Hub repo id downloads ``config.json`` and this framework's variant only (another one when
        the repo has none) from ``HF_ENDPOINT``; a folder is read in place.
        """
        cls._prepare_class()
        target = str(pretrained_model_name_or_path)
        if not os.path.isdir(target):
            target = str(_download(target, cls.framework, revision=revision, token=token, cache_dir=cache_dir,
                                   force_download=force_download, local_files_only=local_files_only))
        # huggingface_hub reads and decodes the config (coders, dataclasses) from the folder, then calls _from_pretrained
        return super().from_pretrained(target, **model_kwargs)

    @classmethod
    def _prepare_class(cls) -> None:
        """Run before loading: ``__init__`` annotations written as strings (``from __future__ import
        annotations``) are resolved, so huggingface_hub decodes dataclass and ``coders`` arguments."""
        import typing

        try:
            hints = typing.get_type_hints(cls.__init__)
        except Exception:  # noqa: BLE001 - a name that does not resolve: leave the annotations as they are
            return
        cls._hub_mixin_init_parameters = {
            name: p.replace(annotation=hints[name]) if isinstance(p.annotation, str) and name in hints else p
            for name, p in cls._hub_mixin_init_parameters.items()}

    @classmethod
    def _from_pretrained(cls, *, model_id: str, revision: str | None, cache_dir: str | Path | None, force_download: bool,
                         local_files_only: bool, token: str | bool | None, **model_kwargs: Any) -> Any:
        folder = Path(model_id)
        fw = preferred(cls.framework, [p.name for p in folder.iterdir()])
        if fw is None:
            raise InputError(folder, "holds no model.safetensors, tf_model.h5 or flax_model.msgpack (nor their shards)")
        model = cls._build(**model_kwargs)
        if fw == cls.framework and cls._loads_directly(model, folder):
            return cls._load_weights(model, folder)
        # names (or the framework) differ: pair the file's layers with the model's by structure
        from tensorferry.converters import convert

        with tempfile.TemporaryDirectory(prefix="tensorferry-load-") as tmp:
            convert(folder, Path(tmp), to=[cls.framework], source_framework=fw, models={cls.framework: cls._guide(model)})
            return cls._load_weights(model, Path(tmp))

    # framework hooks ------------------------------------------------------------------------------------
    def _write_weights(self, folder: Path, max_shard_size: str | int) -> None:
        raise NotImplementedError

    def _structure(self) -> Any:
        """What the converter should know of the model's own tensors (a torch module), or None."""
        return None

    @classmethod
    def _build(cls, **model_kwargs: Any) -> Any:
        raise NotImplementedError

    @classmethod
    def _loads_directly(cls, model: Any, folder: Path) -> bool:
        raise NotImplementedError

    @classmethod
    def _load_weights(cls, model: Any, folder: Path) -> Any:
        raise NotImplementedError

    @classmethod
    def _guide(cls, model: Any) -> Any:
        """The model as ``convert(models=…)`` takes it."""
        return model


# helpers ------------------------------------------------------------------------------------------------
def _convert_and_check(own_dir: Path, out: Path, others: list[str], max_shard_size: str | int, structure: Any) -> None:
    """Convert the own variant in OWN_DIR to OTHERS, compare every tensor back with it, then move them into OUT."""
    from tensorferry.converters import convert
    from tensorferry.converters.kinds import kinds_table
    from tensorferry.converters.verify.run import verify_dir

    with tempfile.TemporaryDirectory(prefix="tensorferry-convert-") as tmp:
        made = Path(tmp)
        convert(own_dir, made, to=others, max_shard_size=max_shard_size, structure=structure)
        v = verify_dir(made, reference=own_dir, frameworks=others, functional=False, report_dir=False,
                       kinds=kinds_table(structure))
        if not v.passed:
            raise VerificationError(out, "the converted variants differ from the model's weights:\n" + "\n".join(v.culprits()[:10]))
        for fw in others:
            for old in variant_files(out, fw):
                old.unlink()
            for f in variant_files(made, fw):
                shutil.move(str(f), out / f.name)


def _download(repo_id: str, framework: str, *, revision: str | None, token: Any, cache_dir: Any, force_download: bool,
              local_files_only: bool) -> Path:
    """``config.json`` and FRAMEWORK's variant (else the nearest one the repo has) in the HF cache → the snapshot folder."""
    from tensorferry.publish.hub_io import REPO_ID, Hub, call, patterns_for

    if not REPO_ID.match(repo_id) or "/" not in repo_id:
        raise InputError(repo_id, "no such folder, and not a Hub repo id (owner/name)")
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    hub = Hub.resolve(None, token if isinstance(token, str) else None)
    api = hub.api()
    known = (RepositoryNotFoundError, RevisionNotFoundError)
    try:
        if local_files_only:  # whichever variant an earlier call downloaded, own first
            for fw in (framework, *FALLBACK[framework]):
                try:
                    return Path(api.snapshot_download(repo_id, revision=revision, allow_patterns=[CONFIG, *FILES[fw].patterns],
                                                      cache_dir=cache_dir, local_files_only=True))
                except Exception:  # noqa: BLE001 - not this variant: try the next one
                    continue
            raise InputError(repo_id, "not in the cache with any framework's weights (local_files_only)")
        info = call(api.model_info, repo_id, revision=revision, what=repo_id, hub=hub, passthrough=known)
        fw = preferred(framework, [s.rfilename for s in info.siblings or []])
        if fw is None:
            raise InputError(repo_id, "holds no model.safetensors, tf_model.h5 or flax_model.msgpack (nor their shards)")
        allow = [CONFIG, *patterns_for([fw], [s.rfilename for s in info.siblings or []])]
        # by the ref's name (not its commit), so the cache records the ref for later local_files_only calls
        return Path(call(api.snapshot_download, repo_id, revision=revision, allow_patterns=allow, cache_dir=cache_dir,
                         force_download=force_download, what=repo_id, hub=hub, passthrough=known))
    except RepositoryNotFoundError:
        raise InputError(repo_id, f"repository not found or not accessible on {hub.host}") from None
    except RevisionNotFoundError:
        raise InputError(repo_id, f"no revision {revision!r}") from None


def encode_config(cls: type, values: dict) -> dict:
    """VALUES with dataclasses and ``coders`` types made JSON-able, as ModelHubMixin encodes ``__init__``
    arguments; what cannot be encoded is left out.

    >>> encode_config(FrameworkHubMixin, {"width": 4, "act": object()})
    {'width': 4}
    """
    return {k: (asdict(v) if is_dataclass(v) and not isinstance(v, type) else cls._encode_arg(v))
            for k, v in values.items() if cls._is_jsonable(v)}


__all__ = ["FrameworkHubMixin", "preferred", "encode_config", "framework_list"]
