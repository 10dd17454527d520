"""The ``sync`` job kind: one sync run as a job (``python -m jupyter_cvat_train.storage JOB_DIR``).

job.json::

    {"kind": "sync", "direction": "up" | "down", "workspace": "/abs/folder",
     "storage": "s3://bucket/prefix" | "file:///abs/path", "delete": false, "dry_run": false,
     "include": [], "exclude": [], "checksum": false, "endpoint_url": null,
     "concurrency": 16, "lock_timeout": 0}

Progress events: ``{"type": "progress", "done": bytes, "total": bytes, "unit": "bytes",
"files_done", "files_total", "rate" (bytes/s)}``. Outputs: the summary of
:func:`.sync.sync` in ``output/summary.json``; status.json ``outputs`` holds the same
summary without a dry run's ``plan`` (a plan of many files would swell status.json past
its size cap and every job list; the server serves it by pages, ``GET jobs/{id}/plan``). The job fails when a file
failed (message names the count and the first error), or on a fatal storage error
(one clear message, no traceback); it is cancelled on SIGTERM after transfers in
flight complete. The job also fails when deletes were asked for but refused because a
listing was incomplete (the transfers are done). The workspace must not contain the
job's own folder.
"""

from __future__ import annotations

from dataclasses import replace

from ..jobs.runtime import JobCancelled, JobContext, JobError, write_json_atomic
from .backends import StorageError
from .sync import SyncOptions, sync

_BOOL = ("delete", "dry_run", "checksum")
_LIST = ("include", "exclude")


def options_from_spec(spec: dict) -> SyncOptions:
    """SyncOptions from a job spec; raises JobError naming the bad field."""
    for name in ("direction", "workspace", "storage"):
        if not isinstance(spec.get(name), str) or not spec.get(name):
            raise JobError(f"job.json: '{name}' is required and must be a string")
    kwargs = {name: spec[name] for name in ("direction", "workspace", "storage")}
    for name in _BOOL:
        if name in spec and spec[name] is not None:
            if not isinstance(spec[name], bool):
                raise JobError(f"job.json: '{name}' must be true or false")
            kwargs[name] = spec[name]
    for name in _LIST:
        value = spec.get(name) or []
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise JobError(f"job.json: '{name}' must be a list of glob strings")
        kwargs[name] = value
    if spec.get("endpoint_url") is not None:
        if not isinstance(spec["endpoint_url"], str):
            raise JobError("job.json: 'endpoint_url' must be a string or null")
        kwargs["endpoint_url"] = spec["endpoint_url"] or None
    for name, kind in (
        ("concurrency", int),
        ("lock_timeout", (int, float)),
        ("max_attempts", int),
        ("multipart_threshold", int),
        ("multipart_chunksize", int),
        ("download_chunksize", int),
    ):
        if spec.get(name) is not None:
            if not isinstance(spec[name], kind) or isinstance(spec[name], bool) or spec[name] < 0:
                raise JobError(f"job.json: '{name}' must be a non-negative number")
            kwargs[name] = spec[name]
    if spec.get("retry_mode") is not None:
        kwargs["retry_mode"] = str(spec["retry_mode"])
    return SyncOptions(**kwargs)


def sync_job(ctx: JobContext) -> dict:
    """Run the sync described by ``ctx.spec``; return its summary (see module doc)."""
    options = replace(options_from_spec(ctx.spec), protected=(str(ctx.dir.path),))

    def progress(p: dict) -> None:
        ctx.progress(
            p["bytes_done"],
            p["bytes_total"],
            "bytes",
            files_done=p["files_done"],
            files_total=p["files_total"],
            rate=round(p["rate"], 1),
        )

    def save(summary: dict) -> None:
        write_json_atomic(ctx.output_dir / "summary.json", summary)
        ctx.event("summary", **{k: v for k, v in summary.items() if k != "plan"})

    try:
        summary = sync(options, progress=progress, log=ctx.log, warn=ctx.warn, cancelled=ctx.cancelled)
    except StorageError as e:
        if e.summary is not None:
            save(e.summary)
        raise
    save(summary)
    summary = {k: v for k, v in summary.items() if k != "plan"}
    if summary["cancelled"]:
        err = JobCancelled("cancelled by request: transfers in flight completed, the rest not started")
        err.outputs = summary
        raise err
    if summary["delete_refused"] and not summary["failed"]:
        raise JobError(summary["delete_refused"] + "; the other changes were synced.")
    if summary["failed"]:
        first = summary["errors"][0] if summary["errors"] else ""
        raise JobError(
            f"{summary['failed']} file(s) failed (first: {first}); the others were synced. "
            "Fix the cause and run the sync again: it transfers only what is missing."
        )
    return summary
