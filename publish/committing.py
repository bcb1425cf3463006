"""The one commit: ``create_commit`` with every operation, retried only when it provably did not land.

A run id (MARKER) in the description tells our commit from any other once an answer is lost: without a
pull request ``parent_commit`` makes a late-landing duplicate fail with 412; a pull request has no such
guard, so an answer that never came is waited for (``LANDING_WAIT``) before the commit is sent again.

>>> import httpx2
>>> _in_flight(httpx2.ReadTimeout("no answer")), COMMIT_RETRIES, LANDING_WAIT
(True, 10, 30.0)
"""
from __future__ import annotations

import time
from typing import Any

from tensorferry.converters.errors import BranchMovedError

from .hub_io import Hub, call, hub_error, is_transient, retry_after, status_of

COMMIT_RETRIES = 10  # a commit is retried only after checking it did not land
LANDING_WAIT = 30.0  # PR mode: seconds a commit whose answer never came may take to land before it is sent again


def pull_requests(api: Any, hub: Hub, repo_id: str) -> list:
    """REPO_ID's pull requests (any status), with call()'s retries: a listing's requests happen while it
    is iterated, so it is iterated inside the call."""
    return call(lambda: list(api.get_repo_discussions(repo_id, discussion_type="pull_request")), what=repo_id, hub=hub)


def last_pr(api: Any, hub: Hub, repo_id: str) -> int:
    """The highest pull request number of REPO_ID (0 without any): ours will be above it."""
    return max((d.num for d in pull_requests(api, hub, repo_id)), default=0)


def commit(api: Any, hub: Hub, repo_id: str, ops: list, branch: str, parent: str | None, create_pr: bool,
           prs_before: int, message: str, description: str, marker: str) -> tuple[str, str | None, str | None]:
    """One ``create_commit`` on BRANCH at PARENT → (commit URL, commit id, PR URL); retried only when it
    provably did not land (MARKER, a run id in DESCRIPTION, finds it after a lost answer)."""
    for attempt in range(COMMIT_RETRIES + 1):
        try:
            info = api.create_commit(repo_id, ops, commit_message=message, commit_description=description,
                                     revision=branch, create_pr=create_pr or None, parent_commit=parent)
            return str(info), info.oid, info.pr_url
        except Exception as e:  # noqa: BLE001 - mapped below, token scrubbed
            if status_of(e) == 412:  # someone moved the branch, or our own earlier attempt landed after all
                found = landed(api, hub, repo_id, branch, parent, marker, create_pr, prs_before) if attempt else None
                if found is not None:
                    return found
                raise moved(hub, repo_id, branch, parent) from None
            if not is_transient(e) or attempt == COMMIT_RETRIES:
                raise hub_error(f"{repo_id}: commit", e, hub) from None
            found = _await_landing(api, hub, repo_id, branch, parent, marker, create_pr, prs_before, e, attempt)
            if found is not None:
                return found
    raise AssertionError("unreachable")


def _in_flight(error: BaseException) -> bool:
    """Whether the commit may still be in flight on the Hub: no answer at all (dropped, timed out), or a
    gateway's 502/504 (the backend may go on); a 429/500/503 is the server's own answer."""
    return status_of(error) in (None, 502, 504)


def _await_landing(api: Any, hub: Hub, repo_id: str, branch: str, parent: str | None, marker: str, create_pr: bool,
                   prs_before: int, error: BaseException, attempt: int) -> tuple[str, str | None, str | None] | None:
    """After a failed commit call: our commit if it landed (or lands while we look), None to send it again.

    Without a PR, ``parent_commit`` makes a second send of a commit that landed late fail with 412 (then
    found by its run id): a short look is enough.  A PR has no such guard, so when the commit may still be
    in flight we poll for up to LANDING_WAIT seconds before sending it again.
    """
    wait = LANDING_WAIT if create_pr and _in_flight(error) else 0.0
    deadline = time.monotonic() + wait
    look = 0
    while True:
        found = landed(api, hub, repo_id, branch, parent, marker, create_pr, prs_before)
        if found is not None:
            return found
        pause = retry_after(error, attempt + look, base=0.25, cap=4.0)
        if wait:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            pause = min(pause, left)
        time.sleep(pause)
        look += 1
        if not wait and look == 2:  # two looks (~0.75 s), then send again: parent_commit guards the branch
            return None


def landed(api: Any, hub: Hub, repo_id: str, branch: str, parent: str | None, marker: str, create_pr: bool,
           prs_before: int) -> tuple[str, str | None, str | None] | None:
    """After a lost answer: our commit if it landed (found by its run id), None if it did not;
    raises if someone else moved the branch meanwhile."""
    if create_pr:
        for d in pull_requests(api, hub, repo_id):
            if d.num <= prs_before:
                continue
            details = call(api.get_discussion_details, repo_id, d.num, what=repo_id, hub=hub)
            if any(marker in (getattr(ev, "content", "") or "") for ev in details.events[:1]):
                head = call(api.model_info, repo_id, revision=d.git_reference, what=repo_id, hub=hub).sha
                return f"{hub.endpoint}/{repo_id}/commit/{head}", head, f"{hub.endpoint}/{repo_id}/discussions/{d.num}"
        return None
    head = call(api.model_info, repo_id, revision=branch, what=repo_id, hub=hub).sha
    if head == parent:
        return None
    last = call(newest_commit, hub, repo_id, head, what=repo_id, hub=hub)
    if last is not None and marker in (last.get("message") or ""):
        return f"{hub.endpoint}/{repo_id}/commit/{head}", head, None
    raise moved(hub, repo_id, branch, parent)


def newest_commit(hub: Hub, repo_id: str, revision: str) -> dict | None:
    """The newest commit of REVISION as the Hub lists it (``id``, ``title``, ``message``), reading one page only:
    ``list_repo_commits`` would fetch the whole history."""
    from urllib.parse import quote

    from huggingface_hub.utils import build_hf_headers, paginate

    url = f"{hub.endpoint}/api/models/{repo_id}/commits/{quote(revision, safe='')}"
    headers = build_hf_headers(token=hub.token or False, library_name="tensorferry")
    pages = paginate(url, params={"limit": 1}, headers=headers)  # a generator: only the pages iterated are read
    return next(iter(pages), None)


def moved(hub: Hub, repo_id: str, branch: str, parent: str | None) -> BranchMovedError:
    """The error for a branch someone else moved since planning (it names the new head)."""
    try:
        now = hub.api().model_info(repo_id, revision=branch).sha
    except Exception:  # noqa: BLE001 - the message still says what happened
        now = "unknown"
    return BranchMovedError(repo_id, f"{branch} changed since planning: its head is now {now} (planned on {parent}); "
                             "nothing was overwritten: run again to publish on top of it")
