"""Malformed and hostile request bodies against the local Hub: wrong JSON types in commit lines,
non-object headers, JSON nested 100k deep on every endpoint that reads JSON, text that is not
UTF-8, YAML bombs in model cards. Each answers 400 with a message (never 500), and the server
stays healthy."""
from __future__ import annotations

import base64
import json
import time
from typing import Iterator

import pytest
from huggingface_hub import HfApi

from .hub_helpers import assert_healthy, error_of, ndjson, raw, unique
from tensorferry.publish.hub import LocalHub, create_token

DEEP_LIST = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
NDJSON = {"Content-Type": "application/x-ndjson"}
JSON = {"Content-Type": "application/json"}
HEADER = {"key": "header", "value": {"summary": "s"}}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalHub, str]]:
    data = tmp_path_factory.mktemp("hostile-payloads")
    with LocalHub(data) as hub:
        yield hub, create_token(data, "mallory")


@pytest.fixture(scope="module")
def repo(server: tuple[LocalHub, str]) -> str:
    hub, token = server
    repo_id = f"mallory/{unique()}"
    HfApi(endpoint=hub.url, token=token).create_repo(repo_id)
    return repo_id


def _message(body: bytes) -> str:
    """Hub errors carry `error`, git-lfs ones `message`."""
    data = json.loads(body)
    return str(data.get("error") or data.get("message") or "")


def _commit(server: tuple[LocalHub, str], repo: str, body: bytes) -> tuple[int, bytes]:
    hub, token = server
    status, _, out = raw(hub.url, "POST", f"/api/models/{repo}/commit/main", body, token, NDJSON)
    return status, out


BAD_LINES = {
    "value is a string": ndjson(HEADER, {"key": "file", "value": "a.txt"}),
    "value is a list": ndjson(HEADER, {"key": "file", "value": ["a.txt"]}),
    "value is null": ndjson(HEADER, {"key": "deletedFile", "value": None}),
    "header is a string": ndjson({"key": "header", "value": "summary"}),
    "header is a list": ndjson({"key": "header", "value": [1, 2]}),
    "header is a number": ndjson({"key": "header", "value": 3}),
    "parentCommit is a list": ndjson({"key": "header", "value": {"summary": "s", "parentCommit": ["x"]}}),
    "parentCommit is a number": ndjson({"key": "header", "value": {"summary": "s", "parentCommit": 7}}),
    "line is a list": ndjson([1, 2]),
    "line is a string": ndjson("header"),
    "line is null": ndjson(None),
    "key is a number": ndjson(HEADER, {"key": 1, "value": {}}),
    "key is missing": ndjson(HEADER, {"value": {"path": "a"}}),
    "unknown key": ndjson(HEADER, {"key": "symlink", "value": {"path": "a"}}),
    "not JSON": ndjson(HEADER, b"{not json"),
    "not UTF-8": ndjson(HEADER, b'{"key":"file","value":{"path":"\xff\xfe","content":""}}'),
    "no header": ndjson({"key": "file", "value": {"path": "a.txt", "content": "YQ=="}}),
    "content is a number": ndjson(HEADER, {"key": "file", "value": {"path": "a", "content": 12}}),
    "content is not base64": ndjson(HEADER, {"key": "file", "value": {"path": "a", "content": "@@@"}}),
    "encoding is a list": ndjson(HEADER, {"key": "file", "value": {"path": "a", "content": "", "encoding": []}}),
    "path is a number": ndjson(HEADER, {"key": "deletedFile", "value": {"path": 5}}),
    "lfs oid is a list": ndjson(HEADER, {"key": "lfsFile", "value": {"path": "a", "oid": ["0" * 64], "size": 1}}),
    "lfs size is a string": ndjson(HEADER, {"key": "lfsFile", "value": {"path": "a", "oid": "0" * 64, "size": "x"}}),
    "lfs algo is a dict": ndjson(HEADER, {"key": "lfsFile", "value": {"path": "a", "oid": "0" * 64, "algo": {}}}),
    "header nested 100k deep": b'{"key":"header","value":' + DEEP_LIST + b"}\n",
    "line nested 100k deep": DEEP_OBJECT + b"\n",
    "value nested 100k deep": ndjson(HEADER, b'{"key":"file","value":' + DEEP_OBJECT + b"}"),
    "summary with a lone surrogate": ndjson({"key": "header", "value": {"summary": "\ud800"}}),
}


@pytest.mark.parametrize("case", sorted(BAD_LINES))
def test_malformed_commit_lines_answer_400(server, repo: str, case: str) -> None:
    hub, token = server
    head = HfApi(endpoint=hub.url, token=token).model_info(repo).sha
    status, out = _commit(server, repo, BAD_LINES[case])
    assert status == 400, out
    assert error_of(out), out
    assert HfApi(endpoint=hub.url, token=token).model_info(repo).sha == head  # nothing was committed
    assert_healthy(hub.url)


def _json_endpoints(repo: str) -> list[tuple[str, str, dict[str, str]]]:
    return [("POST", "/api/repos/create", JSON), ("DELETE", "/api/repos/delete", JSON),
            ("POST", "/api/validate-yaml", JSON), ("POST", f"/api/models/{repo}/preupload/main", JSON),
            ("POST", f"/api/models/{repo}/paths-info/main", JSON), ("POST", f"/api/models/{repo}/branch/b1", JSON),
            ("POST", f"/api/models/{repo}/tag/main", JSON), ("PUT", f"/api/models/{repo}/settings", JSON),
            ("POST", f"/api/models/{repo}/discussions", JSON),
            ("POST", f"/{repo}.git/info/lfs/objects/batch", {"Content-Type": "application/vnd.git-lfs+json"}),
            ("POST", f"/{repo}.git/info/lfs/objects/verify", {"Content-Type": "application/vnd.git-lfs+json"})]


@pytest.mark.parametrize("body", [DEEP_LIST, DEEP_OBJECT, b"[]", b'"text"', b"12", b"{bad", b"\xff\xfe{}",
                                  b'{"x": "\\ud800"}'],
                         ids=["deep-list", "deep-object", "list", "string", "number", "broken", "not-utf8",
                              "lone-surrogate"])
def test_hostile_json_bodies_answer_400_everywhere(server, repo: str, body: bytes) -> None:
    hub, token = server
    for method, path, headers in _json_endpoints(repo):
        status, _, out = raw(hub.url, method, path, body, token, headers)
        if path == "/api/validate-yaml":  # the client reads this body before the status: always JSON
            assert status == 400 and json.loads(out)["errors"], (path, out)
        else:
            assert status == 400, (method, path, status, out)
            assert _message(out), (path, out)
    assert_healthy(hub.url)


WRONG_TYPES = [
    ("preupload/main", {"files": "abc"}), ("preupload/main", {"files": [1]}), ("preupload/main", {"files": {"a": 1}}),
    ("preupload/main", {"files": [{"path": "a", "size": [1]}]}), ("preupload/main", {"files": [{"path": "a", "sample": 5}]}),
    ("paths-info/main", {"paths": [1]}), ("paths-info/main", {"paths": 5}), ("paths-info/main", {"paths": "abc", "expand": []}),
    ("discussions", {"title": ["abc"]}), ("discussions", {"title": "abc", "description": {"x": 1}}),
    ("branch/b2", {"startingPoint": ["main"]}), ("settings", {"private": "yes"}), ("settings", {"visibility": ["x"]}),
]


@pytest.mark.parametrize("path,body", WRONG_TYPES, ids=[f"{p}-{json.dumps(b)}" for p, b in WRONG_TYPES])
def test_wrong_json_types_answer_400(server, repo: str, path: str, body: object) -> None:
    hub, token = server
    method = "PUT" if path == "settings" else "POST"
    status, _, out = raw(hub.url, method, f"/api/models/{repo}/{path}", json.dumps(body), token, JSON)
    assert status == 400, out
    assert error_of(out)
    assert_healthy(hub.url)


@pytest.mark.parametrize("body", [{"operation": "upload", "objects": "x"}, {"operation": "upload", "objects": [1]},
                                  {"operation": "upload", "objects": {"a": 1}}, {"operation": ["upload"]},
                                  {"operation": "upload", "objects": [{"oid": "0" * 64, "size": 1}], "hash_algo": []}],
                         ids=str)
def test_wrong_lfs_batch_types_answer_400(server, repo: str, body: object) -> None:
    hub, token = server
    status, _, out = raw(hub.url, "POST", f"/{repo}.git/info/lfs/objects/batch", json.dumps(body), token,
                         {"Content-Type": "application/vnd.git-lfs+json"})
    assert status in (400, 422), out
    assert _message(out)
    assert_healthy(hub.url)


ALIAS_BOMB = "---\n" + "a0: &a0 [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10)) + "---\n# bomb\n"
DEEP_YAML = "---\nx: " + "[" * 50_000 + "]" * 50_000 + "\n---\n# deep\n"
HUGE_YAML = "---\n" + "".join(f"k{i}: [{', '.join(str(j) for j in range(40))}]\n" for i in range(6_000)) + "---\n"  # ~950 kB


@pytest.mark.parametrize("card", [ALIAS_BOMB, DEEP_YAML, HUGE_YAML], ids=["alias-bomb", "deep", "huge"])
def test_hostile_model_cards_do_not_break_the_repo(server, card: str) -> None:
    hub, token = server
    api = HfApi(endpoint=hub.url, token=token)
    repo_id = f"mallory/{unique()}"
    api.create_repo(repo_id)
    started = time.monotonic()
    status, _, out = raw(hub.url, "POST", "/api/validate-yaml", json.dumps({"content": card, "repoType": "model"}),
                         token, JSON, timeout=20)
    assert status == 400 and json.loads(out)["errors"], out
    # A client that skips validate-yaml can still commit such a card: the repository stays readable.
    content = base64.b64encode(card.encode()).decode()
    status, out = _commit(server, repo_id, ndjson(HEADER, {"key": "file", "value": {"path": "README.md",
                                                                                   "content": content}}))
    assert status == 200, out
    info = api.model_info(repo_id)
    assert info.card_data is None or dict(info.card_data) == {}
    assert raw(hub.url, "GET", f"/{repo_id}", timeout=20)[0] == 200  # the web page too
    assert time.monotonic() - started < 20
    assert_healthy(hub.url)


def test_a_bracket_bomb_card_does_not_stall_the_web_page(server) -> None:
    # python-markdown's link parsing is quadratic in '[': 20k of them took 140 s of one core.
    hub, token = server
    repo_id = f"mallory/{unique()}"
    HfApi(endpoint=hub.url, token=token).create_repo(repo_id)
    card = "# Model\n\n" + "[" * 20_000 + "\n\n![" * 3_000
    content = base64.b64encode(card.encode()).decode()
    status, out = _commit(server, repo_id, ndjson(HEADER, {"key": "file", "value": {"path": "README.md",
                                                                                   "content": content}}))
    assert status == 200, out
    started = time.monotonic()
    status, _, page = raw(hub.url, "GET", f"/{repo_id}", timeout=20)
    assert status == 200 and b"[[[[" in page
    assert time.monotonic() - started < 10
    assert_healthy(hub.url)


@pytest.mark.parametrize("url", ["/api/models/{repo}/discussions/99999999999999999999999",
                                 "/api/models/{repo}/discussions/99999999999999999999999/merge",
                                 "/api/models/{repo}/discussions/0/status",
                                 "/api/models/{repo}/discussions?p=99999999999999999999999"])
def test_huge_numbers_in_urls_answer_4xx(server, repo: str, url: str) -> None:
    hub, token = server
    method = "POST" if url.endswith(("/merge", "/status")) else "GET"
    status, _, out = raw(hub.url, method, url.format(repo=repo), b"", token)
    assert status in (200, 400, 404), out
    assert_healthy(hub.url)
