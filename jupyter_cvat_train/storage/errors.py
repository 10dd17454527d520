"""Errors of the storage layer (shared by the URI parser, the backends and the engine)."""

from __future__ import annotations

from ..jobs.runtime import JobError


class StorageError(JobError):
    """A storage problem the user can act on (bad URI, unreachable endpoint, refused
    credentials, missing bucket or folder, another sync running). Its message is meant
    to be shown as is, without a traceback, and never contains credentials.
    ``summary`` holds the sync summary so far when the error stopped a sync midway."""

    summary: dict | None = None


class LocationError(StorageError):
    """A storage URI or endpoint that is malformed or not allowed. ``status`` is the
    HTTP-style status a server answers with: 400 malformed, 403 not allowed (``..``,
    outside the server root, an endpoint not in the allow-list), 404 missing."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


class TransferError(Exception):
    """One object or file could not be transferred; the message says why (the sync
    records it and goes on with the others)."""


class SourceChanged(TransferError):
    """The source file changed while it was being copied: nothing was stored for it
    (the caller may retry with a fresh stat)."""
