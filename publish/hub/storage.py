"""SQLite (WAL) metadata for the local Hub: accounts, tokens, repositories, refs, commits, trees, PRs.

A commit is one `BEGIN IMMEDIATE` transaction that writes the new tree and commit rows and moves
the ref; file bytes are already in the content-addressed `BlobStore` by then. A crash before the
transaction commits leaves the previous state; objects stored without a commit are never listed.

>>> import tempfile
>>> s = Store(tempfile.mkdtemp())
>>> repo = s.create_repo("model", "alice", "demo", private=False, author="alice")
>>> files = s.tree_files(s.resolve(repo, "main"))
>>> sorted(files)
['.gitattributes']
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .blobs import BlobStore, git_blob_sha1
from .errors import ApiError, bad_request, entry_not_found, revision_not_found
from .names import check_ref_name, ref_name_problem, tree_clash

# Hub's default .gitattributes: which names it stores through LFS.
GITATTRIBUTES = "".join(
    f"*.{ext} filter=lfs diff=lfs merge=lfs -text\n"
    for ext in ("7z", "arrow", "bin", "bz2", "ckpt", "ftz", "gz", "h5", "joblib", "mlmodel", "model",
                "msgpack", "npy", "npz", "onnx", "ot", "parquet", "pb", "pickle", "pkl", "pt", "pth",
                "rar", "safetensors", "tar", "tflite", "tgz", "wasm", "xz", "zip", "zst")
) + "saved_model/**/* filter=lfs diff=lfs merge=lfs -text\n*tfevents* filter=lfs diff=lfs merge=lfs -text\n"

SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts(name TEXT PRIMARY KEY, kind TEXT NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS members(org TEXT NOT NULL, user TEXT NOT NULL, PRIMARY KEY(org, user));
CREATE TABLE IF NOT EXISTS tokens(hash TEXT PRIMARY KEY, user TEXT NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS repos(id INTEGER PRIMARY KEY, type TEXT NOT NULL, namespace TEXT NOT NULL,
    name TEXT NOT NULL, private INTEGER NOT NULL, created_at REAL NOT NULL, last_modified REAL NOT NULL,
    UNIQUE(type, namespace, name));
CREATE TABLE IF NOT EXISTS trees(id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS commits(id TEXT PRIMARY KEY, repo_id INTEGER NOT NULL, parent TEXT,
    tree TEXT NOT NULL, title TEXT NOT NULL, message TEXT NOT NULL, author TEXT NOT NULL, created_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS commits_repo ON commits(repo_id);
CREATE TABLE IF NOT EXISTS refs(repo_id INTEGER NOT NULL, name TEXT NOT NULL, commit_id TEXT NOT NULL,
    PRIMARY KEY(repo_id, name));
CREATE TABLE IF NOT EXISTS lfs_links(repo_id INTEGER NOT NULL, oid TEXT NOT NULL, size INTEGER NOT NULL,
    PRIMARY KEY(repo_id, oid));
CREATE TABLE IF NOT EXISTS discussions(repo_id INTEGER NOT NULL, num INTEGER NOT NULL, title TEXT NOT NULL,
    author TEXT NOT NULL, is_pr INTEGER NOT NULL, status TEXT NOT NULL, base_ref TEXT, base_commit TEXT,
    merge_commit TEXT, created_at REAL NOT NULL, PRIMARY KEY(repo_id, num));
CREATE TABLE IF NOT EXISTS events(id INTEGER PRIMARY KEY AUTOINCREMENT, repo_id INTEGER NOT NULL,
    num INTEGER NOT NULL, type TEXT NOT NULL, author TEXT NOT NULL, created_at REAL NOT NULL, data TEXT NOT NULL);
"""

HEX_RE = re.compile(r"^[0-9a-f]{4,40}$")
# path -> [git sha1 (of the pointer for LFS), size, sha256 or None]
Files = dict[str, list[Any]]


@dataclass(frozen=True)
class Repo:
    id: int
    type: str
    namespace: str
    name: str
    private: bool
    created_at: float
    last_modified: float

    @property
    def repo_id(self) -> str:
        return f"{self.namespace}/{self.name}"


def branch_ref(rev: str) -> str:
    """Full ref name a commit may target: `main` → `refs/heads/main`; `refs/pr/1` is kept.

    >>> branch_ref("main")
    'refs/heads/main'
    """
    check_ref_name(rev, "revision")
    if rev.startswith("refs/heads/") or re.fullmatch(r"refs/pr/\d+", rev):
        return rev
    if rev.startswith("refs/"):
        raise bad_request(f"Cannot commit to {rev}: not a branch or pull request")
    return f"refs/heads/{rev}"


class Store:
    """Thread-safe access to the Hub's SQLite database and blob store under `data_dir`."""

    def __init__(self, data_dir: str | os.PathLike[str], durable: bool = True) -> None:
        self.data_dir = Path(data_dir).expanduser()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.blobs = BlobStore(self.data_dir, durable)
        self.db = sqlite3.connect(self.data_dir / "hub.sqlite3", isolation_level=None,
                                  check_same_thread=False, timeout=30)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit acknowledged to a client survives a machine crash; NORMAL (`--no-fsync`) keeps
        # WAL's atomicity, so a killed server still never shows half a commit.
        self.db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.lock = threading.RLock()
        self._depth = 0
        with self.tx():
            for stmt in SCHEMA.split(";"):
                if stmt.strip():
                    self.db.execute(stmt)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken at once (BEGIN IMMEDIATE) so concurrent writers queue."""
        with self.lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self.db
                finally:
                    self._depth -= 1
                return
            self.db.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            else:
                self.db.execute("COMMIT")
            finally:
                self._depth = 0

    def q(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        with self.lock:
            return self.db.execute(sql, args).fetchall()

    def q1(self, sql: str, *args: Any) -> sqlite3.Row | None:
        rows = self.q(sql, *args)
        return rows[0] if rows else None

    # accounts ------------------------------------------------------------------------------
    def ensure_account(self, name: str, kind: str) -> None:
        row = self.q1("SELECT kind FROM accounts WHERE name=?", name)
        if row is None:
            with self.tx() as db:
                db.execute("INSERT OR IGNORE INTO accounts VALUES(?,?,?)", (name, kind, time.time()))
        elif row["kind"] != kind:
            raise ValueError(f"{name} is already an {'organisation' if row['kind'] == 'org' else 'user'}")

    def orgs_of(self, user: str) -> list[str]:
        return [r["org"] for r in self.q("SELECT org FROM members WHERE user=? ORDER BY org", user)]

    # repositories ----------------------------------------------------------------------------
    def _repo(self, row: sqlite3.Row | None) -> Repo | None:
        return Repo(row["id"], row["type"], row["namespace"], row["name"], bool(row["private"]),
                    row["created_at"], row["last_modified"]) if row else None

    def get_repo(self, rtype: str, namespace: str, name: str) -> Repo | None:
        return self._repo(self.q1("SELECT * FROM repos WHERE type=? AND namespace=? AND name=?",
                                  rtype, namespace, name))

    def list_repos(self, rtype: str, readable_ns: list[str]) -> list[Repo]:
        marks = ",".join("?" * len(readable_ns)) or "''"
        rows = self.q(f"SELECT * FROM repos WHERE type=? AND (private=0 OR namespace IN ({marks}))"
                      " ORDER BY namespace, name", rtype, *readable_ns)
        return [r for r in (self._repo(x) for x in rows) if r]

    def create_repo(self, rtype: str, namespace: str, name: str, private: bool, author: str) -> Repo:
        """Create a repository with the Hub's initial commit (a `.gitattributes`)."""
        now = time.time()
        with self.tx() as db:
            cur = db.execute("INSERT INTO repos(type,namespace,name,private,created_at,last_modified)"
                             " VALUES(?,?,?,?,?,?)", (rtype, namespace, name, int(private), now, now))
            repo_id = int(cur.lastrowid or 0)
            sha1, size = self.blobs.put_regular(GITATTRIBUTES.encode())
            tree = self._put_tree({".gitattributes": [sha1, size, None]})
            cid = self._insert_commit(repo_id, None, tree, "initial commit", "", author)
            db.execute("INSERT INTO refs VALUES(?,?,?)", (repo_id, "refs/heads/main", cid))
        repo = self.get_repo(rtype, namespace, name)
        assert repo is not None
        return repo

    def delete_repo(self, repo: Repo) -> None:
        with self.tx() as db:
            for table in ("refs", "commits", "lfs_links", "discussions", "events"):
                db.execute(f"DELETE FROM {table} WHERE repo_id=?", (repo.id,))
            db.execute("DELETE FROM repos WHERE id=?", (repo.id,))

    def set_private(self, repo: Repo, private: bool) -> None:
        with self.tx() as db:
            db.execute("UPDATE repos SET private=? WHERE id=?", (int(private), repo.id))

    # refs, commits, trees ----------------------------------------------------------------------
    def refs(self, repo: Repo) -> dict[str, str]:
        return {r["name"]: r["commit_id"]
                for r in self.q("SELECT name, commit_id FROM refs WHERE repo_id=? ORDER BY name", repo.id)}

    def ref(self, repo: Repo, name: str) -> str | None:
        row = self.q1("SELECT commit_id FROM refs WHERE repo_id=? AND name=?", repo.id, name)
        return row["commit_id"] if row else None

    def resolve(self, repo: Repo, rev: str) -> str:
        """Branch, tag, full ref, `refs/pr/N`, full or short sha → commit id (404 RevisionNotFound).

        A name git would refuse is never looked up: a ref stored under such a name before names
        were checked must not reach the client, which writes `refs/<name>` into its cache.
        """
        if not HEX_RE.match(rev) and ref_name_problem(rev):
            raise revision_not_found(rev)
        for name in (f"refs/heads/{rev}", f"refs/tags/{rev}", rev):
            if cid := self.ref(repo, name):
                return cid
        if HEX_RE.match(rev):
            rows = self.q("SELECT id FROM commits WHERE repo_id=? AND id LIKE ? LIMIT 2", repo.id, rev + "%")
            if len(rows) == 1:
                return rows[0]["id"]
        raise revision_not_found(rev)

    def commit_row(self, cid: str) -> sqlite3.Row:
        row = self.q1("SELECT * FROM commits WHERE id=?", cid)
        if row is None:
            raise revision_not_found(cid)
        return row

    def tree_files(self, cid: str) -> Files:
        row = self.q1("SELECT t.body FROM commits c JOIN trees t ON t.id=c.tree WHERE c.id=?", cid)
        if row is None:
            raise revision_not_found(cid)
        return json.loads(row["body"])

    def history(self, cid: str) -> list[sqlite3.Row]:
        out = []
        while cid:
            row = self.commit_row(cid)
            out.append(row)
            cid = row["parent"]
        return out

    def _put_tree(self, files: Files) -> str:
        body = json.dumps(files, sort_keys=True, separators=(",", ":"))
        tid = hashlib.sha1(body.encode()).hexdigest()
        self.db.execute("INSERT OR IGNORE INTO trees VALUES(?,?)", (tid, body))
        return tid

    def _insert_commit(self, repo_id: int, parent: str | None, tree: str, title: str, message: str,
                       author: str) -> str:
        now = time.time()
        # Commit ids are 40 lowercase hex like git's; the nonce keeps identical commits distinct.
        seed = f"{repo_id}\0{parent}\0{tree}\0{title}\0{message}\0{author}\0{now}\0{os.urandom(8).hex()}"
        cid = git_blob_sha1(seed.encode())
        self.db.execute("INSERT INTO commits VALUES(?,?,?,?,?,?,?,?)",
                        (cid, repo_id, parent, tree, title, message, author, now))
        self.db.execute("UPDATE repos SET last_modified=? WHERE id=?", (now, repo_id))
        return cid

    def link_lfs(self, repo: Repo, oid: str, size: int) -> None:
        with self.tx() as db:
            db.execute("INSERT OR IGNORE INTO lfs_links VALUES(?,?,?)", (repo.id, oid, size))

    def lfs_size(self, repo: Repo, oid: str) -> int | None:
        row = self.q1("SELECT size FROM lfs_links WHERE repo_id=? AND oid=?", repo.id, oid)
        return int(row["size"]) if row else None

    def commit(self, repo: Repo, ref: str, ops: list[tuple[str, str, list[Any] | None]], title: str,
               message: str, author: str, parent: str | None = None) -> str:
        """Apply `ops` ("add", path, entry) / ("delete", path) / ("delete_folder", path) on `ref`.

        `parent` set and not the ref's head → 412, so two writers with the same parent cannot both win.
        """
        with self.tx() as db:
            head = self.ref(repo, ref)
            if head is None:
                raise revision_not_found(ref)
            if parent and (len(parent) < 7 or not head.startswith(parent.lower())):
                raise ApiError(412, f"Parent commit {parent} is not the head of {ref} ({head})", "PreconditionFailed")
            files = dict(self.tree_files(head))
            for kind, path, entry in ops:
                if kind == "add":
                    files[path] = entry
                elif kind in ("delete", "forget"):  # "forget": a merge removing what is already gone
                    if files.pop(path, None) is None and kind == "delete":
                        raise entry_not_found(path)
                else:
                    prefix = path.rstrip("/") + "/"
                    gone = [p for p in files if p.startswith(prefix)]
                    if not gone:
                        raise entry_not_found(path)
                    for p in gone:
                        del files[p]
            if clash := tree_clash(files, {path for kind, path, _ in ops if kind == "add"}):
                raise ApiError(409, clash, "Conflict")
            cid = self._insert_commit(repo.id, head, self._put_tree(files), title, message, author)
            db.execute("UPDATE refs SET commit_id=? WHERE repo_id=? AND name=?", (cid, repo.id, ref))
            return cid

    def set_ref(self, repo: Repo, name: str, cid: str | None, must_be_new: bool = False) -> None:
        with self.tx() as db:
            if must_be_new and self.ref(repo, name):
                raise ApiError(409, f"Reference {name} already exists", "Conflict")
            if cid is None:
                db.execute("DELETE FROM refs WHERE repo_id=? AND name=?", (repo.id, name))
            else:
                db.execute("INSERT OR REPLACE INTO refs VALUES(?,?,?)", (repo.id, name, cid))

    # discussions and pull requests ---------------------------------------------------------------
    def create_discussion(self, repo: Repo, title: str, description: str, author: str, is_pr: bool,
                          base_ref: str = "refs/heads/main") -> int:
        """New discussion number N; a PR also gets `refs/pr/N` at the head of `base_ref`."""
        with self.tx() as db:
            row = db.execute("SELECT COALESCE(MAX(num),0)+1 FROM discussions WHERE repo_id=?", (repo.id,)).fetchone()
            num = int(row[0])
            base = self.ref(repo, base_ref) if is_pr else None
            if is_pr and base is None:
                raise revision_not_found(base_ref)
            db.execute("INSERT INTO discussions VALUES(?,?,?,?,?,?,?,?,?,?)",
                       (repo.id, num, title, author, int(is_pr), "open", base_ref if is_pr else None,
                        base, None, time.time()))
            if is_pr:
                db.execute("INSERT OR REPLACE INTO refs VALUES(?,?,?)", (repo.id, f"refs/pr/{num}", base))
            self.add_event(repo, num, "comment", author,
                           {"edited": False, "hidden": False, "latest": {"raw": description, "html": ""}})
            return num

    def add_event(self, repo: Repo, num: int, etype: str, author: str, data: dict[str, Any]) -> int:
        with self.tx() as db:
            cur = db.execute("INSERT INTO events(repo_id,num,type,author,created_at,data) VALUES(?,?,?,?,?,?)",
                             (repo.id, num, etype, author, time.time(), json.dumps(data)))
            return int(cur.lastrowid or 0)

    def discussions(self, repo: Repo) -> list[sqlite3.Row]:
        return self.q("SELECT * FROM discussions WHERE repo_id=? ORDER BY num DESC", repo.id)

    def discussion(self, repo: Repo, num: int) -> sqlite3.Row:
        # SQLite integers are 64-bit: a longer number from a URL can name no discussion.
        row = None
        if 0 < num < 1 << 62:
            row = self.q1("SELECT * FROM discussions WHERE repo_id=? AND num=?", repo.id, num)
        if row is None:
            raise ApiError(404, f"Discussion {num} not found", "DiscussionNotFound")
        return row

    def events(self, repo: Repo, num: int) -> list[sqlite3.Row]:
        return self.q("SELECT * FROM events WHERE repo_id=? AND num=? ORDER BY id", repo.id, num)

    def set_status(self, repo: Repo, num: int, status: str, merge_commit: str | None = None) -> None:
        with self.tx() as db:
            db.execute("UPDATE discussions SET status=?, merge_commit=COALESCE(?, merge_commit)"
                       " WHERE repo_id=? AND num=?", (status, merge_commit, repo.id, num))

    def pr_changes(self, repo: Repo, d: sqlite3.Row) -> tuple[Files, list[str]]:
        """(changes the PR makes to its base, paths changed on the base branch too: conflicts)."""
        base = self.tree_files(d["base_commit"])
        head = self.tree_files(self.ref(repo, f"refs/pr/{d['num']}") or d["base_commit"])
        target = self.tree_files(self.ref(repo, d["base_ref"]) or d["base_commit"])
        changes = {p: head.get(p) for p in set(base) | set(head) if base.get(p) != head.get(p)}
        conflicts = sorted(p for p, v in changes.items() if target.get(p) not in (base.get(p), v))
        return changes, conflicts

    def merge_pr(self, repo: Repo, num: int, author: str) -> str:
        """Apply the PR's changes on top of its base branch as one commit (409 on conflicts)."""
        with self.tx():
            d = self.discussion(repo, num)
            if not d["is_pr"] or d["status"] not in ("open", "draft"):
                raise bad_request(f"Discussion {num} is not an open pull request")
            branch_ref(d["base_ref"])  # a base stored before names were checked is not written to
            changes, conflicts = self.pr_changes(repo, d)
            if conflicts:
                raise ApiError(409, f"Pull request {num} conflicts on: {', '.join(conflicts)}", "Conflict")
            ops: list[tuple[str, str, list[Any] | None]] = [
                ("add", p, v) if v is not None else ("forget", p, None) for p, v in sorted(changes.items())]
            cid = self.commit(repo, d["base_ref"], ops, f"Merge pull request #{num}: {d['title']}", "", author)
            self.set_status(repo, num, "merged", cid)
            self.add_event(repo, num, "status-change", author, {"status": "merged"})
            return cid
