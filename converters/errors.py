"""One small exception hierarchy; the CLI maps each class to an exit code.

>>> try:
...     raise InputError("model.h5", "truncated file")
... except TensorferryError as e:
...     (e.exit_code, str(e))
(2, 'model.h5: truncated file')
"""
from __future__ import annotations


class TensorferryError(Exception):
    """Base of every error tensorferry raises on purpose (exit code 1)."""

    exit_code = 1

    def __init__(self, where: object, problem: str | None = None) -> None:
        # `where` names the file, tensor or repository; messages always say which.
        self.where = str(where) if problem is not None else None
        self.problem = problem if problem is not None else str(where)
        super().__init__(f"{self.where}: {self.problem}" if self.where else self.problem)


class InputError(TensorferryError):
    """Corrupt, truncated, hostile, ambiguous or unsupported input (exit code 2)."""

    exit_code = 2


class LayoutError(InputError):
    """A tensor whose kind or target name cannot be decided without a guess."""


class VerificationError(TensorferryError):
    """A converted variant does not reproduce its source (exit code 3)."""

    exit_code = 3


class HubError(TensorferryError):
    """The Hub refused or failed a request (exit code 4); ``status`` is its HTTP status when it answered."""

    exit_code = 4
    status: int | None = None


class BranchMovedError(HubError):
    """The target branch moved since it was planned on: nothing was overwritten; re-plan, do not retry (exit code 4)."""
