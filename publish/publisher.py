"""``publish``: convert once, verify, and push every framework variant to one Hub repo in ONE commit.

The steps, each a function below: resolve the target and the source → convert the missing variants
into a staging folder (each file's sha256 computed while it is written) → read the repo's head and
what it holds → stop if it already holds these files → verify → build the shared card → one
``create_commit`` with every operation (LFS files pre-uploaded, ``parent_commit`` set to the head
read when planning).  ``dry_run`` stops before the first write and returns the plan.

>>> import tempfile
>>> from tensorferry.publish.hub.local import LocalHub, write_token
>>> with LocalHub(tempfile.mkdtemp()) as server:
...     token = write_token(server.data_dir, "alice")
...     result = publish("fixtures/checkpoints/cnn", "alice/tiny-cnn", endpoint=server.url, token=token,
...                      verify="weights", quiet=True)
...     newest = committing.newest_commit(Hub(server.url, token), "alice/tiny-cnn", "main")
>>> result.commit_oid == newest["id"], sorted(f.path for f in result.files)[:3]
(True, ['README.md', 'config.json', 'flax_model.msgpack'])
"""
from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tensorferry.converters import convert, open_source
from tensorferry.converters.checkpoint import Source
from tensorferry.converters.constants import CHECKPOINT_DIR, CONFIG, FILES, FRAMEWORKS, MAX_SHARD_SIZE, README, VERIFICATION, parse_frameworks
from tensorferry.converters.errors import InputError, VerificationError
from tensorferry.converters.formats.digest import FileDigest
from tensorferry.converters.maps.transformers import available as transformers_types
from tensorferry.converters.verify.report import Verification
from tensorferry.converters.verify.run import verify_dir

from . import card as cards
from . import committing
from . import variants as variants_
from .files import cached_digest
from .files import digest as _digest
from .files import is_variant_file
from .files import sha256 as _sha256  # shared with the checkpoints (resume.state)
from .hub_io import REPO_ID, Hub, call, fetch

DEFAULT_MESSAGE = "Add {frameworks} weights (tensorferry)"


@dataclass
class PlannedFile:
    """One file of the commit: where it goes, where it is, its size, and what the commit does with it."""

    path: str
    local: Path
    size: int
    digest: FileDigest | None = None  # known when tensorferry wrote the file
    action: str = "add"  # add, replace, unchanged


@dataclass
class PublishResult:
    """What ``publish`` did (or, with ``dry_run``, would do)."""

    repo_id: str
    endpoint: str
    revision: str
    files: list[PlannedFile] = field(default_factory=list)
    commit_url: str | None = None
    commit_oid: str | None = None
    pr_url: str | None = None
    parent_commit: str | None = None
    no_op: bool = False
    dry_run: bool = False
    created_repo: bool = False
    verification: Verification | None = None
    seconds: float = 0.0

    @property
    def page(self) -> str:
        return f"{self.endpoint}/{self.repo_id}"

    def to_json(self) -> dict:
        v = self.verification
        return {"repo_id": self.repo_id, "endpoint": self.endpoint, "revision": self.revision, "page": self.page,
                "commit_url": self.commit_url, "commit_oid": self.commit_oid, "pr_url": self.pr_url,
                "parent_commit": self.parent_commit, "no_op": self.no_op, "dry_run": self.dry_run,
                "created_repo": self.created_repo, "seconds": round(self.seconds, 2),
                "files": [{"path": f.path, "size": f.size, "action": f.action,
                           "sha256": f.digest.sha256 if f.digest else None} for f in self.files],
                "verification": None if v is None else {"passed": v.passed, "complete": v.complete, "verdict": v.verdict(),
                                                        "weights_only": v.weights_only()}}

    def summary(self) -> str:
        changed = [f for f in self.files if f.action != "unchanged"]
        size = sum(f.size for f in changed)
        if self.no_op:
            return f"nothing to publish: {self.page} ({self.revision}) already holds identical files; no commit made"
        head = "would commit" if self.dry_run else "committed"
        lines = [f"{head} {len(changed)} files ({size / 1e6:.1f} MB) to {self.page} ({self.revision})"
                 + ("" if self.dry_run else f" in one commit: {self.pr_url or self.commit_url}")]
        for f in self.files:
            lines.append(f"  {f.action:<9} {f.path}  {f.size:,} B")
        if self.verification is not None:
            lines.append(f"verification {self.verification.verdict()}")
        return "\n".join(lines)


def publish(src: str | Path, repo_id: str, *, to: Sequence[str] | str | None = None, endpoint: str | None = None,
            token: str | None = None, revision: str | None = None, create_pr: bool = False, private: bool | None = None,
            commit_message: str | None = None, commit_description: str | None = None,
            allow_patterns: Sequence[str] | None = None, ignore_patterns: Sequence[str] | None = None,
            dry_run: bool = False, parent_commit: str | None = None, verify: str = "auto", require_outputs: bool = False,
            models: dict[str, str] | None = None, transformers_python: str | None = None,
            source_revision: str | None = None, source_endpoint: str | None = None, cache_dir: str | None = None,
            max_shard_size: str | int = MAX_SHARD_SIZE, work_dir: str | Path | None = None, command: str | None = None,
            quiet: bool = False, progress: Callable[[int], None] | None = None, structure: object | None = None,
            before_commit: Callable[[PublishResult], None] | None = None,
            description_marker: str | None = None, extras: dict[str, Path] | None = None,
            variants: dict[str, object] | Sequence[str] | None = None) -> PublishResult:
    """Publish SRC (a checkpoint folder or file, or a Hub repo id) to REPO_ID with every framework variant.

    ``verify``: ``"auto"`` (weights always, outputs where the frameworks are installed), ``"full"``
    (outputs everywhere, else fail), ``"weights"``; a failed verification raises ``VerificationError``
    and nothing is pushed.  ``variants`` ({"keras3": model, "nnx": model} or ``"keras3=module:factory"``)
    adds a Keras 3 ``keras3/model.weights.h5`` and an NNX Orbax ``nnx/`` written for those models
    (``publish.variants``), each verified in its framework before the push.  Hub options mean what they mean in ``huggingface_hub``: ``revision`` is the
    branch committed to, ``create_pr`` puts the commit on a new ``refs/pr/N``.
    ``before_commit(result)`` runs right before the commit call, after the LFS files are pre-uploaded
    (a race guard with the shortest window: raising stops the publish with nothing committed; blobs
    uploaded but never committed are harmless, and a repo created for it stays empty).
    ``description_marker`` is a line appended to the commit / PR description (``tensorferry batch``
    finds its PRs by it).  ``extras`` (repo path → local file) go into the same commit as they are:
    the callback's ``checkpoint/`` folder.
    """
    started = time.perf_counter()
    hub = Hub.resolve(endpoint, token)
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, file=sys.stderr))
    if not REPO_ID.match(repo_id) or "/" not in repo_id:
        raise InputError(repo_id, "not a Hub repo id (owner/name)")
    branch = revision or "main"
    say(f"target: {hub.repo_url(repo_id)} (branch {branch}{', as a pull request' if create_pr else ''}) on {hub.host}")
    with _staging(work_dir) as staging:
        src_path, record = _source(src, hub, source_endpoint, source_revision, cache_dir)
        source = open_source(src_path)
        targets = parse_frameworks(to) if to else list(FRAMEWORKS)
        kept = _kept_as_is(src_path, source, targets)
        made = [fw for fw in targets if fw != kept]
        _check_space(staging, source.nbytes * len(made))
        say(f"source: {src_path} ({source.framework}); converting to {', '.join(made) or 'nothing'}")
        with _hashing(list(source.files) if kept else []) as hashes:
            converted = convert(source, staging, to=made, max_shard_size=max_shard_size, progress=progress,
                                digests=True, structure=structure) if made else None
            files, by_fw = _files(src_path, source, kept, staging, converted)
            files = [dataclasses.replace(f, digest=hashes[f.local].result()) if f.local in hashes else f for f in files]
        files += _extras(extras or {}, files)
        extra = variants_.parse(variants)
        by_variant, checks = {}, {}
        if extra:
            say(f"writing {', '.join(extra)} for the given models ...")
            written, by_variant, checks = variants_.write(source, staging, extra)
            files += [PlannedFile(path, local, size, digest) for path, local, size, digest in written]
            failed = [f"{name}: {c.brief()} ({', '.join(t.name for t in c.failures[:5])})" for name, c in checks.items() if not c.passed]
            if failed:
                raise VerificationError(repo_id, "verification FAILED, nothing was pushed:\n" + "\n".join(failed))
        result = PublishResult(repo_id, hub.endpoint, branch, dry_run=dry_run)
        remote = _remote(hub, repo_id, branch, [f.path for f in files] + [README, *VERIFICATION])
        result.parent_commit = parent_commit or remote.head
        if remote.head and all(_same(remote.entries.get(f.path), f) for f in files) and remote.has_our_card:
            result.files, result.no_op = [_mark(f, "unchanged") for f in files], True
            result.seconds = time.perf_counter() - started
            return result
        say("verifying ...")
        verification = _verify(staging, src_path, made, verify, models, transformers_python, structure)
        result.verification = verification
        if verification is not None and not verification.passed:
            raise VerificationError(repo_id, "verification FAILED, nothing was pushed:\n" + "\n".join(verification.culprits()[:10]))
        if require_outputs and (verification is None or not verification.complete):
            raise VerificationError(repo_id, "outputs were not compared in every framework (--require-outputs); nothing was pushed")
        present = remote.variants(skip=list(by_fw))
        facts = _facts(repo_id, source, {**by_fw, **present}, made, files, verification, record, command)
        facts.present, facts.sizes = list(present), {**{n: remote.root[n] for names in present.values() for n in names},
                                                     **facts.sizes}
        facts.variants, facts.variant_models = by_variant, dict(extra)
        facts.variant_checks = {name: c.brief() for name, c in checks.items()}
        card = cards.build_card(facts, existing=remote.readme, source=_read(src_path, README))
        (staging / README).write_text(str(card))
        files += [PlannedFile(README, staging / README, (staging / README).stat().st_size)]
        files += [PlannedFile(n, staging / n, (staging / n).stat().st_size) for n in VERIFICATION if (staging / n).exists()]
        files = _filter(files, allow_patterns, ignore_patterns)
        result.files = [_mark(f, "unchanged" if _same(remote.entries.get(f.path), f) else
                              "replace" if f.path in remote.entries else "add") for f in files]
        if dry_run or all(f.action == "unchanged" for f in result.files):
            result.no_op = not dry_run
            result.seconds = time.perf_counter() - started
            return result
        message = commit_message or DEFAULT_MESSAGE.format(frameworks=", ".join(fw for fw in targets))
        description = commit_description or (verification.markdown() if verification is not None else None)
        if description_marker:
            description = f"{description}\n\n{description_marker}" if description else description_marker
        _push(hub, repo_id, result, remote, create_pr, private, message, description, say, before_commit)
    result.seconds = time.perf_counter() - started
    return result


# source and staging -------------------------------------------------------------------------------
@contextlib.contextmanager
def _staging(work_dir: str | Path | None) -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="tensorferry-publish-", dir=work_dir))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def _hashing(paths: list[Path]) -> Iterator[dict[Path, Future[FileDigest]]]:
    """Digests of the files published as they are, computed on a thread while the conversion runs: the
    upload needs their sha256, and reading them afterwards would be a pass of its own.  A source in
    the HF cache is not read at all: its blob is named after its sha256.  Leaving the block early
    (an error, Ctrl-C) drops the ones not started and stops the one running."""
    stop = threading.Event()
    pool = ThreadPoolExecutor(1, thread_name_prefix="tensorferry-hash")
    try:
        yield {p: _done(known) if (known := cached_digest(p)) else pool.submit(_digest, p, stop) for p in paths}
    finally:
        stop.set()
        pool.shutdown(wait=False, cancel_futures=True)


def _done(value: Any) -> Future:
    future: Future = Future()
    future.set_result(value)
    return future


def _check_space(staging: Path, needed: int) -> None:
    """Refuse before converting when the staging folder cannot hold the variants (minutes saved, no half-written files)."""
    free = shutil.disk_usage(staging).free
    if needed > free:
        raise InputError(staging, f"needs about {needed / 1e9:.1f} GB free for the converted variants, has {free / 1e9:.1f} GB: "
                                  "choose another folder with --work-dir")


def _source(src: str | Path, hub: Hub, source_endpoint: str | None, revision: str | None,
            cache_dir: str | None) -> tuple[Path, dict | None]:
    """A local checkpoint as is; a Hub repo id downloaded (config, card and its source variant only)."""
    if Path(src).exists():
        return Path(src), None
    if not REPO_ID.match(str(src)) or "/" not in str(src):
        raise InputError(src, "no such file or folder, and not a Hub repo id (owner/name)")
    from_hub = Hub.resolve(source_endpoint, hub.token) if source_endpoint else hub
    return fetch(str(src), from_hub, revision=revision, cache_dir=cache_dir, extra=(CONFIG, README))


def _kept_as_is(path: Path, source: Source, targets: list[str]) -> str | None:
    """The framework whose files are published untouched: a folder's own variant under its standard names.

    Pickles (``pytorch_model.bin``) are never republished: they are converted to safetensors.
    """
    fw = source.framework
    if fw in targets and path.is_dir() and all(is_variant_file(f.name, fw) for f in source.files):
        return fw
    return None


def _files(path: Path, source: Source, kept: str | None, staging: Path, converted: Any) -> tuple[list[PlannedFile], dict[str, list[str]]]:
    """Every file to publish, and which files hold each framework's variant."""
    out: list[PlannedFile] = []
    by_fw: dict[str, list[str]] = {}
    if kept:
        index = path / FILES[kept].index
        for f in ([index] if index.exists() else []) + list(source.files):
            out.append(PlannedFile(f.name, f, f.stat().st_size))
        by_fw[kept] = [f.path for f in out]
    for fw, output in (converted.outputs.items() if converted else []):
        by_fw[fw] = list(output.files)
        for name in output.files:
            out.append(PlannedFile(name, staging / name, (staging / name).stat().st_size, output.digests.get(name)))
    if source.config_path is not None:
        config = staging / CONFIG if (staging / CONFIG).exists() else source.config_path
        out.append(PlannedFile(CONFIG, config, config.stat().st_size))
    return out, {fw: by_fw[fw] for fw in FRAMEWORKS if fw in by_fw}


def _extras(extras: dict[str, Path], files: list[PlannedFile]) -> list[PlannedFile]:
    """EXTRAS as planned files; a path the weights, config or card already take is refused."""
    taken = {f.path for f in files} | {README, *VERIFICATION}
    out = []
    for path, local in sorted(extras.items()):
        if path in taken or path.startswith("/") or ".." in path.split("/"):
            raise InputError(path, "cannot be published as an extra file: the path is taken or not inside the repo")
        out.append(PlannedFile(path, Path(local), Path(local).stat().st_size))
    return out


def _read(path: Path, name: str) -> str | None:
    f = (path if path.is_dir() else path.parent) / name
    return f.read_text(errors="replace") if f.is_file() else None


def _filter(files: list[PlannedFile], allow: Sequence[str] | None, ignore: Sequence[str] | None) -> list[PlannedFile]:
    keep = [f for f in files if not allow or any(fnmatch.fnmatch(f.path, p) for p in allow)]
    return [f for f in keep if not any(fnmatch.fnmatch(f.path, p) for p in ignore or ())]


def _mark(f: PlannedFile, action: str) -> PlannedFile:
    f.action = action
    return f


# what the repo holds --------------------------------------------------------------------------------
@dataclass
class Remote:
    """The target branch as read when planning."""

    exists: bool
    head: str | None
    branch_exists: bool
    entries: dict[str, Any] = field(default_factory=dict)  # path → RepoFile
    readme: str | None = None
    root: dict[str, int] = field(default_factory=dict)  # top-level file → size (variants the repo already holds)

    def variants(self, skip: Sequence[str]) -> dict[str, list[str]]:
        """Framework → its files at the top of the repo, for frameworks not in SKIP."""
        found = {fw: sorted(n for n in self.root if is_variant_file(n, fw)) for fw in FRAMEWORKS if fw not in skip}
        return {fw: names for fw, names in found.items() if names}

    @property
    def has_our_card(self) -> bool:
        return self.readme is not None and cards.BEGIN in self.readme


def _remote(hub: Hub, repo_id: str, branch: str, paths: list[str]) -> Remote:
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError
    from huggingface_hub.hf_api import RepoFile

    api = hub.api()
    known = (RepositoryNotFoundError, RevisionNotFoundError)
    try:
        head = call(api.model_info, repo_id, revision=branch, what=repo_id, hub=hub, passthrough=known).sha
        branch_exists = True
    except RepositoryNotFoundError:
        return Remote(False, None, False)
    except RevisionNotFoundError:  # a new branch starts from main
        head = call(api.model_info, repo_id, what=repo_id, hub=hub).sha
        branch_exists = False
    infos = call(api.get_paths_info, repo_id, sorted(set(paths)), revision=head, what=repo_id, hub=hub)
    entries = {i.path: i for i in infos if isinstance(i, RepoFile)}
    root = {i.path: i.size for i in call(lambda: list(api.list_repo_tree(repo_id, revision=head)), what=repo_id, hub=hub)
            if isinstance(i, RepoFile)}
    readme = None
    if README in entries:
        readme = Path(call(api.hf_hub_download, repo_id, README, revision=head, what=repo_id, hub=hub)).read_text(errors="replace")
    return Remote(True, head, branch_exists, entries, readme, root)


def _same(remote: Any, f: PlannedFile) -> bool:
    """Whether the repo's file is byte-identical to the local one (sha256 for LFS, git blob id otherwise)."""
    if remote is None or remote.size != f.size:
        return False
    if remote.lfs is not None:
        return remote.lfs.sha256 == (f.digest.sha256 if f.digest else _sha256(f.local))
    from huggingface_hub.utils.sha import git_hash

    return remote.blob_id == git_hash(f.local.read_bytes())


# verify and describe ----------------------------------------------------------------------------------
def _verify(staging: Path, src_path: Path, made: list[str], mode: str, models: dict[str, str] | None,
            transformers_python: str | None, structure: object | None = None) -> Verification | None:
    if mode not in ("auto", "full", "weights"):
        raise InputError("--verify", f"unknown mode {mode!r}: auto, full or weights")
    if not made:
        return None  # nothing converted: the files are the source's own
    functional = {"auto": "auto", "full": True, "weights": False}[mode]
    from tensorferry.converters.kinds import kinds_table

    kinds = kinds_table(structure)
    return verify_dir(staging, reference=src_path, frameworks=made, functional=functional, models=models,
                      transformers_python=transformers_python, report_dir=staging, kinds=kinds)


def _facts(repo_id: str, source: Source, by_fw: dict[str, list[str]], made: list[str], files: list[PlannedFile],
           verification: Verification | None, record: dict | None, command: str | None) -> cards.CardFacts:
    from importlib.metadata import version

    config = source.config or {}
    transformers = config.get("model_type") in transformers_types() and bool(config.get("architectures"))
    provenance = {"converted by": f"tensorferry {version('tensorferry')}"}
    if record:
        provenance["source"] = f"[{record['id']}]({record['endpoint']}/{record['id']}) at revision `{record['sha']}`"
    else:
        provenance["source"] = f"local {source.framework} checkpoint ({', '.join(f.name for f in source.files)})"
    if command:
        provenance["command"] = f"`{command}`"
    return cards.CardFacts(repo_id=repo_id, frameworks=by_fw, sizes={f.path: f.size for f in files},
                           source_framework=source.framework, converted=list(made),
                           architecture=config["architectures"][0] if transformers else None,
                           library_name="transformers" if transformers else None,
                           base_model=record["id"] if record else None, verification=verification, provenance=provenance,
                           checkpoint=[f.path for f in files if f.path.startswith(CHECKPOINT_DIR + "/")])


# the one commit ----------------------------------------------------------------------------------------
def _push(hub: Hub, repo_id: str, result: PublishResult, remote: Remote, create_pr: bool, private: bool | None,
          message: str, description: str | None, say: Callable[..., None],
          before_commit: Callable[[PublishResult], None] | None = None) -> None:
    from huggingface_hub import CommitOperationAdd
    from huggingface_hub.lfs import UploadInfo

    api = hub.api()
    if not remote.exists:
        call(api.create_repo, repo_id, private=private, exist_ok=True, what=repo_id, hub=hub)
        result.created_repo = True
        result.parent_commit = result.parent_commit or call(api.model_info, repo_id, what=repo_id, hub=hub).sha
    if result.revision != "main" and not remote.branch_exists and not create_pr:
        call(api.create_branch, repo_id, branch=result.revision, revision=result.parent_commit, exist_ok=True,
             what=repo_id, hub=hub)
    ops = []
    for f in result.files:
        if f.action == "unchanged":
            continue
        op = CommitOperationAdd(f.path, str(f.local))
        if f.digest is not None:  # hashed while written (or beside the conversion): the client need not read it again
            op.upload_info = UploadInfo(size=f.digest.size, sample=f.digest.sample, sha256=bytes.fromhex(f.digest.sha256))
        ops.append(op)
    say(f"uploading {len(ops)} files to {hub.repo_url(repo_id)} ...")
    call(api.preupload_lfs_files, repo_id, additions=ops, revision=result.revision, create_pr=create_pr or None,
         what=repo_id, hub=hub)
    # A run id in the description tells our commit from any other after an answer is lost.
    marker = f"<!-- tensorferry publish {uuid.uuid4().hex} -->"
    description = f"{description}\n\n{marker}" if description else marker
    prs_before = committing.last_pr(api, hub, repo_id) if create_pr else 0
    if before_commit is not None:  # last, so that its check is as fresh as it can be when the commit goes out
        before_commit(result)
    result.commit_url, result.commit_oid, result.pr_url = committing.commit(
        api, hub, repo_id, ops, result.revision, result.parent_commit, create_pr, prs_before, message, description, marker)
