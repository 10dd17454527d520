"""Sync between a workspace folder and object storage (S3 / S3-compatible, or a local
folder as ``file://`` storage), with ``aws s3 sync`` semantics and stronger safety.

Public API::

    from jupyter_cvat_train.storage import SyncOptions, sync
    summary = sync(SyncOptions("up", "/work/ws", "s3://bucket/prefix", endpoint_url=...))

Modules: :mod:`.sync` (engine), :mod:`.plan` (compare + filters), :mod:`.backends`
(interface, ``file://``, URI parsing), :mod:`.s3` (boto3), :mod:`.local` (tree walk,
key safety, temp files), :mod:`.lock` (one sync per folder pair), :mod:`.job` (the
``sync`` job kind, ``python -m jupyter_cvat_train.storage JOB_DIR``).
"""

from __future__ import annotations

from .backends import Storage, StorageError
from .opener import open_storage
from .sync import SyncOptions, format_summary, sync

__all__ = ["Storage", "StorageError", "SyncOptions", "format_summary", "open_storage", "sync"]
