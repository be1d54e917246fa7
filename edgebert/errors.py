"""Errors that edgebert reports to users as one line: the problem, then the fix."""

from __future__ import annotations


class EdgebertError(Exception):
    """A user-facing failure. ``str(err)`` is one line naming the problem and the fix."""

    def __init__(self, problem: str, fix: str | None = None):
        self.problem = problem
        self.fix = fix
        super().__init__(problem if not fix else f"{problem} ({fix})")


class SourceError(EdgebertError):
    """A model source that cannot be read: missing files, wrong signature, corrupt weights."""


class DownloadError(EdgebertError):
    """A download that failed or did not verify; nothing is left in the cache."""
