"""What names the local Hub accepts: ref names (branches, tags, revisions) and file paths.

Both are checked on every write, so nothing the client cannot store or serve gets in: a ref name
ends up as a file under the client's cache (`refs/<name>`), a path as a file in a snapshot.

>>> check_ref_name("release/v1.0", "branch")
'release/v1.0'
>>> check_ref_name("../../x", "branch")
Traceback (most recent call last):
...
tensorferry.publish.hub.errors.ApiError: Invalid branch name '../../x': contains '..'
>>> check_path("weights/model.safetensors")
'weights/model.safetensors'
>>> check_path("a\\nb")
Traceback (most recent call last):
...
tensorferry.publish.hub.errors.ApiError: Invalid path 'a\\nb': contains a control character
"""
from __future__ import annotations

import re
from typing import Any

from .errors import bad_request

MAX_REF_BYTES = 255  # a ref is one file name in the client's cache
MAX_COMPONENT_BYTES = 255  # the longest file name common file systems store
MAX_PATH_BYTES = 4096
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
# `git check-ref-format` forbids these anywhere in a ref name (besides control characters).
REF_FORBIDDEN = ("..", "@{", "//", " ", "~", "^", ":", "?", "*", "[", "\\")
COMMIT_ID_RE = re.compile(r"[0-9a-f]{40}")


def _encodable(value: Any) -> str | None:
    """`value` if it is a str that encodes as UTF-8 (no lone surrogates), else None."""
    if not isinstance(value, str):
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return value


def ref_name_problem(name: Any) -> str | None:
    """Why `name` is not a valid ref name, or None: `git check-ref-format --allow-onelevel` rules,
    plus the Hub's: not `HEAD`, no leading `-`, not 40 hex digits (the client's cache would take it
    for a commit id), at most 255 bytes.

    >>> [ref_name_problem(n) for n in ("main", "a..b", "x.lock", "HEAD")]
    [None, "contains '..'", "a component ends with '.lock'", 'is reserved']
    """
    if _encodable(name) is None:
        return "is not a UTF-8 string"
    if not name:
        return "is empty"
    if len(name.encode()) > MAX_REF_BYTES:
        return f"is longer than {MAX_REF_BYTES} bytes"
    if CONTROL_RE.search(name):
        return "contains a control character"
    for bad in REF_FORBIDDEN:
        if bad in name:
            return f"contains {bad!r}"
    if name in ("@", "HEAD"):
        return "is reserved"
    if name.startswith("-"):
        return "starts with '-'"
    if name.startswith("/") or name.endswith("/"):
        return "starts or ends with '/'"
    if name.endswith("."):
        return "ends with '.'"
    for part in name.split("/"):
        if part.startswith("."):
            return "a component starts with '.'"
        if part.endswith(".lock"):
            return "a component ends with '.lock'"
    if COMMIT_ID_RE.fullmatch(name):
        return "looks like a commit id"
    return None


def check_ref_name(name: Any, what: str) -> str:
    """`name` if it is a valid branch/tag/revision name, else 400 naming `what` and the problem."""
    problem = ref_name_problem(name)
    if problem:
        raise bad_request(f"Invalid {what} name {name!r}: {problem}")
    return name


def check_path(path: Any) -> str:
    """`path` if it is a valid file path in a repository, else 400 saying why.

    Refused: empty, absolute, `\\`, `.`/`..`/empty components, a `.git` component (any case),
    control characters (CR/LF included), text that is not UTF-8, components over 255 bytes.
    """
    if _encodable(path) is None or not path:
        raise bad_request(f"Invalid path {path!r}: not a non-empty UTF-8 string")
    problem = None
    if CONTROL_RE.search(path):
        problem = "contains a control character"
    elif path.startswith("/") or "\\" in path:
        problem = "is absolute or contains '\\'"
    elif len(path.encode()) > MAX_PATH_BYTES:
        problem = f"is longer than {MAX_PATH_BYTES} bytes"
    else:
        for part in path.split("/"):
            if part in ("", ".", ".."):
                problem = "has an empty, '.' or '..' component"
            elif part.lower() == ".git":
                problem = "has a '.git' component"
            elif len(part.encode()) > MAX_COMPONENT_BYTES:
                problem = f"has a component longer than {MAX_COMPONENT_BYTES} bytes"
            if problem:
                break
    if problem:
        raise bad_request(f"Invalid path {path!r}: {problem}")
    return path


def tree_clash(paths: Any, added: Any = ()) -> str | None:
    """Why `paths` (a repository's files after a commit adding `added`) is not a tree, or None:
    one name cannot be a file and a folder at once.

    >>> tree_clash(["a", "a/b"], added=["a/b"])
    "Cannot add 'a/b': 'a' is a file"
    >>> tree_clash(["a", "a/b"], added=["a"])
    "Cannot add 'a': 'a' is a folder (it holds 'a/b')"
    >>> tree_clash(["a/b", "c"]) is None
    True
    """
    files = set(paths)
    for path in sorted(files):
        parts = path.split("/")
        for i in range(1, len(parts)):
            folder = "/".join(parts[:i])
            if folder in files:
                if folder in added and path not in added:
                    return f"Cannot add {folder!r}: {folder!r} is a folder (it holds {path!r})"
                return f"Cannot add {path!r}: {folder!r} is a file"
    return None
