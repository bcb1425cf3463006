"""Users, organisations, tokens and who may read or write what.

Tokens are shown once, when created; only their sha256 is stored, so a leaked database does not
leak credentials. A server running on the same data dir sees a new token at once (it reads SQLite).

>>> import tempfile
>>> d = tempfile.mkdtemp()
>>> tok = create_token(d, "alice", org="acme")
>>> ctx = HubContext(Store(d))
>>> (ctx.user_for_token(tok), ctx.namespaces("alice"))
('alice', ['alice', 'acme'])
"""
from __future__ import annotations

import hashlib
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from starlette.requests import Request

from .errors import ApiError, bad_request, forbidden, repo_not_found, unauthorized
from .storage import Repo, Store

NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$")
# First path segments the server routes itself: they cannot be namespaces.
RESERVED = {"api", "lfs", "models", "datasets", "spaces", "health", "static", "settings", "new"}
REPO_TYPES = {"model": "models", "dataset": "datasets", "space": "spaces"}


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_name(name: str, what: str) -> str:
    """Reject names the Hub would not accept (and those that collide with routes)."""
    if not NAME_RE.match(name or "") or ".." in name or name.endswith(".git") or name.lower() in RESERVED:
        raise bad_request(f"Invalid {what} name: {name!r}")
    return name


def create_token(data_dir: str | os.PathLike[str], user: str, org: str | None = None) -> str:
    """Create `user` (and `org`, with `user` as a member) if needed and return a new write token.

    >>> import tempfile
    >>> create_token(tempfile.mkdtemp(), "bob").startswith("hf_")
    True
    """
    try:
        check_name(user, "user")
        if org:
            check_name(org, "organisation")
    except ApiError as e:
        raise ValueError(e.message) from None
    store = Store(Path(data_dir))
    try:
        store.ensure_account(user, "user")
        if org:
            store.ensure_account(org, "org")
            with store.tx() as db:
                db.execute("INSERT OR IGNORE INTO members VALUES(?,?)", (org, user))
        # `hf_` prefix: log scrubbers and secret scanners already recognise it.
        token = "hf_" + secrets.token_urlsafe(30).replace("-", "A").replace("_", "b")
        with store.tx() as db:
            db.execute("INSERT INTO tokens VALUES(?,?,strftime('%s','now'))", (hash_token(token), user))
        return token
    finally:
        store.close()


@dataclass
class HubContext:
    """Everything a request handler needs: the store, the upload-signing secret, page size, and the
    seconds a JSON body may take to arrive."""

    store: Store
    page_size: int = 1000
    secret: bytes = field(default=b"")
    body_timeout: float = 60.0
    # Multipart uploads being completed, by (repository id, oid): a part that arrived now would write
    # into the object while it is hashed and published.
    completing: set[tuple[int, str]] = field(default_factory=set)

    def __post_init__(self) -> None:
        if not self.secret:
            self.secret = _load_secret(self.store.data_dir / "secret.key")

    def user_for_token(self, token: str) -> str | None:
        row = self.store.q1("SELECT user FROM tokens WHERE hash=?", hash_token(token))
        return row["user"] if row else None

    def user(self, request: Request, required: bool = False) -> str | None:
        """The caller's user name; a token that matches no user is a 401, never anonymous."""
        header = request.headers.get("authorization", "")
        if not header:
            if required:
                raise unauthorized()
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized()
        user = self.user_for_token(token.strip())
        if user is None:
            raise unauthorized()
        return user

    def namespaces(self, user: str | None) -> list[str]:
        return [user, *self.store.orgs_of(user)] if user else []

    def can_write(self, user: str | None, namespace: str) -> bool:
        return user is not None and namespace in self.namespaces(user)

    def repo(self, request: Request, rtype: str, namespace: str, name: str, write: bool = False) -> tuple[Repo, str | None]:
        """Look a repository up for reading or writing.

        Private repositories answer 404 RepoNotFound to anyone without rights, so their existence
        does not leak; a public one answers 403 to a write without rights.
        """
        if rtype != "model":
            raise bad_request(f"Only model repositories are supported by this server (got {rtype})")
        user = self.user(request)
        repo = self.store.get_repo(rtype, namespace, name)
        allowed = self.can_write(user, namespace)
        if repo is None or (repo.private and not allowed):
            raise repo_not_found(f"{namespace}/{name}")
        if write and not allowed:
            raise forbidden(f"You don't have the rights to write to {namespace}/{name}")
        return repo, user


def _load_secret(path: Path) -> bytes:
    """Per-data-dir key that signs LFS upload URLs (those requests carry no Authorization)."""
    if path.exists():
        return path.read_bytes()
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(secrets.token_bytes(32))
        f.flush()
        os.fsync(f.fileno())
    try:
        os.link(tmp, path)  # atomic and never overwrites: two servers starting at once agree on one key
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_bytes()
