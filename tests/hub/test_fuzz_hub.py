"""Fuzz targets for the local Hub's request parsing (hypothesis), run for a bounded time in CI.

Seeds are the committed corpus in `tests/hub/fuzz_corpus/` (ref names, paths, commit NDJSON
bodies, JSON bodies of each endpoint, including the hostile probe's payloads); hypothesis mutates
them and also generates fresh input. Properties:
- ref names: refused whenever `git check-ref-format --allow-onelevel` refuses them;
- paths: an accepted path stays inside the repository when joined to a directory, and has no
  control characters;
- commit lines and JSON bodies: parsing returns checked values or raises a 400 ApiError, nothing else;
- the whole app, in process: no request body or URL makes any endpoint answer 5xx.

`TENSORFERRY_FUZZ_SCALE=20 pytest tests/hub/test_fuzz_hub.py` runs twenty times as many examples.
"""
from __future__ import annotations

import asyncio
import copy
import io
import json
import os
import posixpath
import subprocess
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tensorferry.publish.hub import create_token
from tensorferry.publish.hub.bodies import parse_json
from tensorferry.publish.hub.commit_payload import parse_line, read_lines
from tensorferry.publish.hub.errors import ApiError
from tensorferry.publish.hub.names import check_path, check_ref_name, ref_name_problem
from tensorferry.publish.hub.server import create_app

def _is_json(b: bytes) -> bool:
    try:
        json.loads(b)
    except (ValueError, RecursionError):
        return False
    return len(b) < 1000  # the deep seeds are for byte mutations only


CORPUS = Path(__file__).parent / "fuzz_corpus"
SCALE = float(os.environ.get("TENSORFERRY_FUZZ_SCALE", "1"))
REFS: list[str] = json.loads((CORPUS / "refs.json").read_text())
PATHS: list[str] = json.loads((CORPUS / "paths.json").read_text())
COMMITS = {p.stem: p.read_bytes() for p in sorted((CORPUS / "commit").glob("*.ndjson"))}
COMMIT_LINES = [line for body in COMMITS.values() for line in body.splitlines() if line]
JSON_LINES = [line for line in COMMIT_LINES if _is_json(line)]
JSONS = {p.stem: p.read_bytes() for p in sorted((CORPUS / "json").glob("*.json"))}
JSON_SEEDS = [b for b in JSONS.values() if len(b) < 1000]  # the deep seed is for byte mutations only
TOKENS = [b'"', b"{", b"}", b"[", b"]", b",", b":", b"\\", b"\\ud800", b"\\u0000", b"\n", b"\r", b"\x00", b"\xff",
          b"-1", b"1e999", b"null", b"true", b'"x"', b"[]", b"{}", b"/", b"..", b"@{", b"~", b" ", b"9" * 30]


def fuzz_settings(examples: int) -> settings:
    return settings(max_examples=max(1, int(examples * SCALE)), deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                           HealthCheck.data_too_large])


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A corpus entry with a few random byte-level edits (insert a token, delete, duplicate, flip)."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 6))):
        at = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["insert", "delete", "dup", "flip"]))
        if op == "insert":
            data[at:at] = draw(st.sampled_from(TOKENS))
        elif op == "delete":
            del data[at:at + draw(st.integers(1, 16))]
        elif op == "dup":
            data[at:at] = data[at:at + draw(st.integers(1, 64))]
        elif data:
            data[min(at, len(data) - 1)] ^= 1 << draw(st.integers(0, 7))
    return bytes(data)


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
                           max_leaves=30)


CONFUSIONS = [None, 0, -1, 2**64, 1.5, True, "", "x", "../x", "\n", [], {}, [None], [1], ["x"], [[]], [{}], {"a": 1}]


@st.composite
def retyped(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A JSON corpus entry with one to three of its values (at any depth, picked uniformly) replaced
    by a confusing value or random JSON: the type confusions a byte mutation rarely makes."""
    obj = json.loads(draw(st.sampled_from(seeds)))
    rnd = draw(st.randoms(use_true_random=False))
    for _ in range(rnd.randint(1, 3)):
        slots: list[tuple[Any, Any]] = []
        todo = [obj]
        while todo:
            node = todo.pop()
            keys = list(node) if isinstance(node, dict) else range(len(node)) if isinstance(node, list) else []
            for k in keys:
                slots.append((node, k))
                todo.append(node[k])
        value = copy.deepcopy(rnd.choice(CONFUSIONS)) if rnd.random() < 0.7 else draw(json_values)
        if not slots:
            return json.dumps(value).encode()
        node, key = rnd.choice(slots)
        node[key] = value
    return json.dumps(obj).encode()


def text_like(seeds: list[str]) -> st.SearchStrategy[str]:
    mutants = mutated([s.encode("utf-8", "surrogatepass") for s in seeds]).map(
        lambda b: b.decode("utf-8", "surrogatepass") if _decodes(b) else b.decode("latin-1"))
    return st.one_of(st.sampled_from(seeds), mutants, st.text(max_size=40),
                     st.text(alphabet="ab./-@{}~^:?*[\\ \n\x7fHEAD", max_size=20))


def _decodes(b: bytes) -> bool:
    try:
        b.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return False
    return True


def _git_accepts(name: str) -> bool:
    return subprocess.run(["git", "check-ref-format", "--allow-onelevel", name], capture_output=True).returncode == 0


@fuzz_settings(150)
@given(text_like(REFS))
def test_ref_names_git_refuses_are_refused(name: str) -> None:
    problem = ref_name_problem(name)
    if problem is None:
        assert check_ref_name(name, "branch") == name
    else:
        with pytest.raises(ApiError) as e:
            check_ref_name(name, "branch")
        assert e.value.status == 400 and problem in e.value.message
    # git cannot be asked about names it would read as options or that cannot be an argument.
    if "\0" in name or name.startswith("-") or ref_name_problem(name) == "is not a UTF-8 string":
        return
    if not _git_accepts(name):
        assert problem is not None, f"git refuses {name!r}, the Hub accepted it"


@fuzz_settings(400)
@given(text_like(PATHS))
def test_accepted_paths_stay_inside_the_repository(path: str) -> None:
    try:
        assert check_path(path) == path
    except ApiError as e:
        assert e.status == 400 and "Invalid path" in e.message
        return
    assert not any(ord(c) < 32 or ord(c) == 127 for c in path)
    assert posixpath.normpath(path) == path and not path.startswith("/")
    root = "/repo"
    assert posixpath.normpath(posixpath.join(root, path)).startswith(root + "/")
    assert ".git" not in [p.lower() for p in path.split("/")]
    path.encode("utf-8")


def _check_line(line: bytes) -> None:
    try:
        key, value = parse_line(line, 1)
    except ApiError as e:
        assert e.status == 400 and e.message, e
        return
    assert key in ("header", "file", "lfsFile", "deletedFile", "deletedFolder")
    if key == "header":
        assert all(isinstance(value[k], str) for k in ("summary", "description"))
        assert value["parentCommit"] is None or isinstance(value["parentCommit"], str)
    else:
        assert check_path(value["path"]) == value["path"]
        if key == "file":
            assert isinstance(value["content"], str)
        if key == "lfsFile":
            assert len(value["oid"]) == 64 and (value["size"] is None or value["size"] >= 0)


def test_the_commit_corpus_replays() -> None:
    for name, body in COMMITS.items():
        for line in body.splitlines():
            _check_line(line)
    header, *ops = [parse_line(line, i) for i, line in enumerate(COMMITS["good"].splitlines(), 1)]
    assert header[0] == "header" and [k for k, _ in ops] == ["file", "lfsFile", "lfsFile", "deletedFile",
                                                             "deletedFolder"]


@fuzz_settings(400)
@given(st.one_of(mutated(COMMIT_LINES), retyped(JSON_LINES), st.binary(max_size=200)))
def test_commit_lines_parse_or_answer_400(line: bytes) -> None:
    _check_line(line)


@fuzz_settings(150)
@given(mutated(list(COMMITS.values())))
def test_commit_bodies_read_line_by_line(body: bytes) -> None:
    try:
        for key, _ in read_lines(io.BytesIO(body)):
            assert isinstance(key, str)
    except ApiError as e:
        assert e.status in (400, 413)




@fuzz_settings(500)
@given(st.one_of(mutated(list(JSONS.values())), retyped(JSON_SEEDS), json_values.map(lambda v: json.dumps(v).encode()),
                 st.binary(max_size=100)))
def test_json_bodies_parse_or_answer_400(body: bytes) -> None:
    try:
        parse_json(body)
    except ApiError as e:
        assert e.status == 400 and e.message


# --- the whole app, in process ---------------------------------------------------------------

class InProcessHub:
    """The ASGI app on a temporary data dir, driven without sockets: one request → (status, body)."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="tf-fuzz-")
        self.token = create_token(self.dir, "alice")
        self.app = create_app(self.dir, body_timeout=5)
        assert self.request("POST", "/api/repos/create", b'{"name":"fuzz"}')[0] == 200

    def request(self, method: str, path: str, body: bytes = b"", content_type: str = "application/json",
                token: bool = True) -> tuple[int, bytes]:
        headers = [(b"host", b"127.0.0.1:1"), (b"content-type", content_type.encode()),
                   (b"content-length", str(len(body)).encode())]
        if token:
            headers.append((b"authorization", f"Bearer {self.token}".encode()))
        path, _, query = path.partition("?")
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
                 "scheme": "http", "path": path, "raw_path": path.encode("latin-1"),
                 "query_string": query.encode("latin-1"), "headers": headers,
                 "server": ("127.0.0.1", 1), "client": ("127.0.0.1", 2), "root_path": ""}
        out: dict[str, Any] = {"body": b""}
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                await asyncio.sleep(3600)
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                out["status"] = message["status"]
            else:
                out["body"] += message.get("body", b"")

        asyncio.run(self.app(scope, receive, send))
        return out["status"], out["body"]


@pytest.fixture(scope="module")
def inproc() -> InProcessHub:
    return InProcessHub()


ENDPOINTS = [("POST", "/api/repos/create", "create-repo"), ("POST", "/api/validate-yaml", "validate-yaml"),
             ("POST", "/api/models/alice/fuzz/preupload/main", "preupload"),
             ("POST", "/api/models/alice/fuzz/paths-info/main", "paths-info"),
             ("POST", "/api/models/alice/fuzz/branch/fz", "branch"), ("POST", "/api/models/alice/fuzz/tag/main", "tag"),
             ("PUT", "/api/models/alice/fuzz/settings", "settings"),
             ("POST", "/api/models/alice/fuzz/discussions", "discussion"),
             ("POST", "/alice/fuzz.git/info/lfs/objects/batch", "lfs-batch"),
             ("POST", "/alice/fuzz.git/info/lfs/objects/verify", "verify")]


def _assert_answered(status: int, body: bytes, what: str) -> None:
    assert status < 500, (what, status, body[:300])
    if status >= 400:
        data = json.loads(body)
        assert data.get("error") or data.get("errors") or data.get("message"), (what, body[:300])


@pytest.mark.parametrize("method,path,seed", ENDPOINTS, ids=[e[2] for e in ENDPOINTS])
@fuzz_settings(50)
@given(data=st.data())
def test_no_json_body_makes_an_endpoint_fail(inproc: InProcessHub, method: str, path: str, seed: str,
                                             data: st.DataObject) -> None:
    body = data.draw(st.one_of(retyped([JSONS[seed]]), retyped([JSONS[seed]]), mutated([JSONS[seed]]),
                               mutated(list(JSONS.values())), json_values.map(lambda v: json.dumps(v).encode())))
    status, out = inproc.request(method, path, body)
    _assert_answered(status, out, f"{method} {path} {body[:200]!r}")


@fuzz_settings(150)
@given(st.one_of(mutated(list(COMMITS.values())), st.lists(retyped(JSON_LINES), min_size=1, max_size=4).map(b"\n".join),
                 st.binary(max_size=200)), st.booleans())
def test_no_commit_body_makes_the_commit_endpoint_fail(inproc: InProcessHub, body: bytes, create_pr: bool) -> None:
    path = "/api/models/alice/fuzz/commit/main" + ("?create_pr=1" if create_pr else "")
    status, out = inproc.request("POST", path, body, "application/x-ndjson")
    _assert_answered(status, out, f"commit {body[:200]!r}")


def _digits(text: str) -> str:
    """Some number from fuzzed text: its length in nines, so huge numbers come up too."""
    return "9" * (1 + len(text) % 40)


@fuzz_settings(150)
@given(text_like(REFS), text_like(PATHS),
       st.sampled_from(["tree", "resolve", "revision", "commits", "paths-info", "discussion", "merge"]))
def test_no_revision_or_path_in_a_url_makes_a_read_fail(inproc: InProcessHub, rev: str, path: str, kind: str) -> None:
    r = quote(rev.encode("utf-8", "surrogatepass"), safe="")
    p = quote(path.encode("utf-8", "surrogatepass"), safe="/")
    url, method, body = {
        "tree": (f"/api/models/alice/fuzz/tree/{r}/{p}", "GET", b""),
        "resolve": (f"/alice/fuzz/resolve/{r}/{p}", "GET", b""),
        "revision": (f"/api/models/alice/fuzz/revision/{r}", "GET", b""),
        "commits": (f"/api/models/alice/fuzz/commits/{r}", "GET", b""),
        "paths-info": (f"/api/models/alice/fuzz/paths-info/{r}", "POST",
                       ("paths=" + quote(path.encode("utf-8", "surrogatepass"))).encode()),
        "discussion": (f"/api/models/alice/fuzz/discussions/{_digits(rev)}", "GET", b""),
        "merge": (f"/api/models/alice/fuzz/discussions/{_digits(path)}/merge", "POST", b""),
    }[kind]
    status, out = inproc.request(method, url, body, "application/x-www-form-urlencoded")
    if kind == "resolve" and status in (200, 206):
        return  # a file's bytes, not JSON
    _assert_answered(status, out, f"{kind} {rev!r} {path!r}")
