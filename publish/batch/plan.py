"""What each repo of an organisation needs, decided from the Hub alone (reads only), with the reason.

A repo is converted when it lacks a framework of ``--to``; it is skipped, with the reason recorded,
when it is complete, holds no recognised weights, is over ``--max-size``, gated or unreadable (the
Hub answered 401, 403 or 404), or when a tensorferry PR already exists for its current head (open,
or closed: declined PRs are not re-opened until the head changes).  tensorferry's PRs are found
through the discussions API by the marker line ``marker()`` puts in their description.  A Hub failure that outlived ``call``'s retries
(429, 5xx, dropped connections) is no decision: the plan's action is ``fail`` (exit code 4), so the
run records the repo failed and the next run plans it again.

>>> m = marker("a" * 40, "0123abcd")
>>> m
'<!-- tensorferry-batch head=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa run=0123abcd -->'
>>> parse_marker("Add tf weights\\n\\n" + m) == ("a" * 40, "0123abcd")
True
>>> frameworks_in(["config.json", "tf_model.h5", "model-00001-of-00002.safetensors", "model.safetensors.index.json"])
['pt', 'tf']
"""
from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from tensorferry.converters.constants import FILES, FRAMEWORKS
from tensorferry.converters.errors import HubError

from ..committing import pull_requests
from ..hub_io import Hub, call, patterns_for, redact, source_framework

MARKER = re.compile(r"<!-- tensorferry-batch head=([0-9a-f]{40}) run=([0-9a-f]+) -->")
TITLE_TAG = "(tensorferry)"  # every tensorferry commit title ends with it (publisher.DEFAULT_MESSAGE)
# A repo's memory estimate: the converter streams tensor by tensor, but verification and the
# source download hold about two copies of the weights; the constant is the worker's own footprint.
MEMORY_FACTOR, MEMORY_BASE = 3, 64 * 2**20
UNREADABLE = (401, 403, 404)  # the Hub's answer for a repo (or its PRs) this token may not read: a skip


def marker(head: str, run: str) -> str:
    """The line that marks a PR (or commit) as tensorferry batch's, for this head and this run."""
    return f"<!-- tensorferry-batch head={head} run={run} -->"


def parse_marker(text: str | None) -> tuple[str, str] | None:
    """(head, run) of the marker in TEXT, or None."""
    m = MARKER.search(text or "")
    return (m.group(1), m.group(2)) if m else None


def frameworks_in(files: Sequence[str]) -> list[str]:
    """The frameworks whose variant a repo holds under the standard names tensorferry writes.

    A PyTorch pickle (``pytorch_model.bin``) is a source, not a PyTorch variant: safetensors is missing.
    """
    names = set(files)
    return [fw for fw in FRAMEWORKS if FILES[fw].single in names or FILES[fw].index in names]


@dataclass
class FoundPR:
    """A tensorferry PR on a repo: its number, status (open, closed, merged, draft), marker and URL."""

    num: int
    status: str
    head: str
    run: str
    url: str


@dataclass
class RepoPlan:
    """One repo's decision: ``action`` is ``convert``, ``skip`` or ``fail`` (the Hub failed); ``reason`` says why."""

    repo_id: str
    action: str
    reason: str
    head: str | None = None
    source: str | None = None
    present: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    size: int = 0  # bytes of the source variant
    private: bool = False
    prs: list[FoundPR] = field(default_factory=list)  # tensorferry PRs for the current head

    @property
    def memory(self) -> int:
        """Bytes this repo's pipeline may hold at once (the scheduler's estimate)."""
        return MEMORY_BASE + MEMORY_FACTOR * self.size

    def to_json(self) -> dict:
        return {**asdict(self), "memory": self.memory}


def list_repos(hub: Hub, org: str, include: Sequence[str] = (), exclude: Sequence[str] = ()) -> list[str]:
    """Every model repo of ORG (all pages), filtered by ``--include``/``--exclude`` globs on the id or name.

    >>> _matches("acme/bert-tiny", ["bert-*"]), _matches("acme/bert-tiny", ["acme/gpt*"])
    (True, False)
    """
    api = hub.api()
    ids = sorted(m.id for m in call(lambda: list(api.list_models(author=org)), what=f"models of {org}", hub=hub))
    return [r for r in ids if (not include or _matches(r, include)) and not _matches(r, exclude)]


def _matches(repo_id: str, globs: Sequence[str]) -> bool:
    name = repo_id.split("/", 1)[-1]
    return any(fnmatch.fnmatchcase(repo_id, g) or fnmatch.fnmatchcase(name, g) for g in globs)


def tensorferry_prs(hub: Hub, repo_id: str) -> list[FoundPR]:
    """The repo's PRs carrying tensorferry batch's marker (any status), newest first."""
    api = hub.api()
    found = pull_requests(api, hub, repo_id)
    out = []
    for d in found:
        if TITLE_TAG not in (d.title or ""):  # only ours need their description read
            continue
        details = call(api.get_discussion_details, repo_id, d.num, what=repo_id, hub=hub)
        mark = parse_marker(details.events[0].content if details.events else None)
        if mark:
            out.append(FoundPR(d.num, d.status, mark[0], mark[1], f"{hub.endpoint}/{repo_id}/discussions/{d.num}"))
    return sorted(out, key=lambda p: -p.num)


def plan_repo(hub: Hub, repo_id: str, targets: Sequence[str], max_size: int | None = None,
              create_pr: bool = True) -> RepoPlan:
    """Read REPO_ID at its head and decide what to do with it."""
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    api = hub.api()
    try:
        info = call(api.model_info, repo_id, files_metadata=True, what=repo_id, hub=hub,
                    passthrough=(GatedRepoError, RepositoryNotFoundError))
    except GatedRepoError:
        return RepoPlan(repo_id, "skip", "gated")
    except RepositoryNotFoundError as e:  # 404, or 401 for a private repo of someone else
        return RepoPlan(repo_id, "skip", f"unreadable: {redact(e, hub.token).splitlines()[0]}")
    except HubError as e:  # call() maps every other failure; only a refusal is a skip
        if e.status in UNREADABLE:
            return RepoPlan(repo_id, "skip", f"unreadable: {e}")
        return RepoPlan(repo_id, "fail", f"planning failed: {e}")
    if getattr(info, "gated", False):
        return RepoPlan(repo_id, "skip", "gated", head=info.sha)
    if getattr(info, "disabled", False):
        return RepoPlan(repo_id, "skip", "disabled", head=info.sha)
    sizes = {s.rfilename: s.size or 0 for s in info.siblings or []}
    present, source = frameworks_in(list(sizes)), source_framework(list(sizes))
    plan = RepoPlan(repo_id, "convert", "", head=info.sha, source=source, present=present,
                    missing=[fw for fw in targets if fw not in present], private=bool(info.private))
    if source is None:
        return _skip(plan, "no recognised weights (model.safetensors, pytorch_model.bin, tf_model.h5, flax_model.msgpack)")
    wanted = patterns_for([source], list(sizes))
    plan.size = sum(size for name, size in sizes.items() if any(fnmatch.fnmatchcase(name, p) for p in wanted))
    if not plan.missing:
        return _skip(plan, f"complete ({', '.join(present)})")
    if max_size is not None and plan.size > max_size:
        return _skip(plan, f"over --max-size ({plan.size:,} B > {max_size:,} B)")
    if create_pr:
        try:
            plan.prs = [p for p in tensorferry_prs(hub, repo_id) if p.head == info.sha]
        except HubError as e:
            if e.status in UNREADABLE:
                return _skip(plan, f"unreadable pull requests: {e}")
            plan.action, plan.reason = "fail", f"planning failed: {e}"
            return plan
        if plan.prs:
            pr = plan.prs[0]
            return _skip(plan, f"tensorferry PR #{pr.num} ({pr.status}) exists for head {info.sha[:8]}")
    plan.reason = f"{source} source; missing {', '.join(plan.missing)}"
    return plan


def _skip(plan: RepoPlan, reason: str) -> RepoPlan:
    plan.action, plan.reason = "skip", reason
    return plan


def plan_org(hub: Hub, org: str, targets: Sequence[str], *, include: Sequence[str] = (), exclude: Sequence[str] = (),
             max_size: int | None = None, create_pr: bool = True, threads: int = 8) -> list[RepoPlan]:
    """``plan_repo`` for every repo of ORG, a few at a time (the reads are latency-bound), in id order."""
    repos = list_repos(hub, org, include, exclude)
    with ThreadPoolExecutor(max(1, min(threads, len(repos)))) as pool:
        return list(pool.map(lambda r: plan_repo(hub, r, targets, max_size, create_pr), repos))


def plan_table(plans: Sequence[RepoPlan]) -> str:
    """The plan as ``--dry-run`` prints it: one line per repo.

    >>> print(plan_table([RepoPlan("acme/a", "convert", "tf source; missing pt, flax", size=1000)]))
    convert  acme/a         1,000 B  tf source; missing pt, flax
    """
    width = max((len(p.repo_id) for p in plans), default=0)
    return "\n".join(f"{p.action:<8} {p.repo_id:<{width}} {p.size:>13,} B  {p.reason}" for p in plans)
