"""Errors the local Hub answers with, mapped to the `X-Error-Code` header the client reads.

>>> e = ApiError(404, "Repository not found", "RepoNotFound")
>>> (e.status, e.code)
(404, 'RepoNotFound')
"""
from __future__ import annotations


class ApiError(Exception):
    """An HTTP error with an optional `X-Error-Code` (the client maps that code to an exception)."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


def repo_not_found(repo_id: str) -> ApiError:
    """404 for a missing repository, and for a private one the caller may not read."""
    return ApiError(404, f"Repository not found: {repo_id}", "RepoNotFound")


def revision_not_found(rev: str) -> ApiError:
    return ApiError(404, f"Invalid rev id: {rev}", "RevisionNotFound")


def entry_not_found(path: str) -> ApiError:
    return ApiError(404, f"Entry not found: {path}", "EntryNotFound")


def bad_request(message: str) -> ApiError:
    return ApiError(400, message, "BadRequest")


def forbidden(message: str) -> ApiError:
    return ApiError(403, message, "Forbidden")


def unauthorized() -> ApiError:
    # This exact wording keeps the client from reading a bad token as "repository not found".
    return ApiError(401, "Invalid credentials in Authorization header", "Unauthorized")
