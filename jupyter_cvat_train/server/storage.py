"""The server's sync helpers behind the panel's Sync section (the handlers in
:mod:`.handlers` stay thin and call these).

- :func:`connection_check`: ``POST storage/check {storage, endpoint_url?, workspace?,
  write?}``. The storage URI is parsed once; a ``file://`` folder must be inside the
  server root (403); the endpoint must be allowed (the sync job's rule, 403). The check
  itself (:func:`jupyter_cvat_train.storage.check.check_connection`) does network I/O
  with short timeouts and runs in the server's bounded pool, never on the event loop.
- :func:`plan_page`: ``GET jobs/{id}/plan?offset=&limit=``. The *Preview* is a sync job
  with ``dry_run: true`` (heavy work, listing a bucket and hashing files, stays in a job
  process); its plan is written to the job's ``output/summary.json`` and served here a
  page at a time, so a plan of 100,000 files never rides in the job list.
- :func:`running_sync`: a second sync of the same (workspace, storage, endpoint) while
  one is queued or running is refused by ``POST jobs`` (409 naming that job) instead of
  failing later on the pair's lock.

Functions raise :class:`~jupyter_cvat_train.jobs.specs.SpecError` (message, HTTP
status); the handlers turn it into the API's error reply.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..jobs.runtime import JobError, read_json_record
from ..jobs.runtime.messages import shown
from ..jobs.specs import SpecError, resolve_inside

#: Largest summary.json read for a plan (a plan line is about 100 bytes).
MAX_SUMMARY_BYTES = 64 << 20
#: Most plan actions in one reply.
MAX_PLAN_PAGE = 2000


def connection_check(body: dict, root: Path, allowed_endpoint_urls: list[str] | tuple[str, ...]) -> dict:
    """Check the request, then the connection (blocking: run in a worker thread).
    Returns :func:`~jupyter_cvat_train.storage.check.check_connection`'s dict, plus a
    ``workspace`` step when ``workspace`` is given (failed when it and a ``file://``
    storage contain each other). Raises SpecError: 400 malformed, 403 outside the root or
    an endpoint not allowed."""
    from ..storage.check import Step, check_connection
    from ..storage.errors import StorageError
    from ..storage.location import allowed_endpoint, parse_storage_uri

    write = body.get("write", True)
    if not isinstance(write, bool):
        raise SpecError("write: expected true or false", 400)
    try:
        location = parse_storage_uri(body.get("storage"))
        endpoint = allowed_endpoint(body.get("endpoint_url"), allowed_endpoint_urls)
    except StorageError as e:
        raise SpecError(str(e), getattr(e, "status", 400)) from None
    if location.scheme == "file":
        resolve_inside(root, str(location.path), "storage", must_exist=False)
    elif body.get("endpoint_url") not in (None, "") and endpoint is None:  # pragma: no cover - defensive
        raise SpecError("endpoint_url: not allowed", 403)
    result = check_connection(location, endpoint_url=endpoint if location.scheme == "s3" else None, write=write)
    workspace = body.get("workspace")
    if workspace not in (None, ""):
        folder = resolve_inside(root, workspace, "workspace", must_exist=False)
        shown_ws = _relative(root, folder)
        if location.overlaps(folder):
            step = Step(
                "workspace",
                "failed",
                f"the workspace folder {shown_ws} and the storage location {location.uri} contain each other",
                "Choose a storage folder outside the workspace folder (and not above it).",
            )
        elif not folder.exists():
            step = Step("workspace", "warning", f"{shown_ws} does not exist yet; a sync to the workspace creates it")
        elif not folder.is_dir():
            step = Step("workspace", "failed", f"{shown_ws} is not a folder", "Choose a folder.")
        else:
            step = Step("workspace", "ok", f"{shown_ws} is a folder inside the server root")
        result["steps"].append(step.__dict__)
        result["ok"] = result["ok"] and step.status != "failed"
    return result


def _relative(root: Path, path: Path) -> str:
    try:
        return path.relative_to(os.path.realpath(root)).as_posix() or "."
    except ValueError:
        return str(path)


def running_sync(manager, spec: dict) -> dict | None:
    """The queued or running sync job (not a dry run) of the same workspace, storage URI
    and endpoint as checked ``spec``, or None. ``manager``: the JobManager. Reads the
    candidates' job.json files: call it from a worker thread."""
    if spec.get("kind") != "sync" or spec.get("dry_run"):
        return None
    key = (os.path.realpath(spec["workspace"]), spec["storage"], spec.get("endpoint_url") or None)
    for job in manager.snapshot():
        if job.get("kind") != "sync" or job.get("state") not in ("queued", "running"):
            continue
        try:
            other = manager.job_dir(job["id"]).read_spec()
        except (JobError, OSError, KeyError):
            continue
        if other.get("dry_run"):
            continue
        workspace = other.get("workspace")
        if not isinstance(workspace, str):
            continue
        if (os.path.realpath(workspace), other.get("storage"), other.get("endpoint_url") or None) == key:
            return job
    return None


def running_sync_error(job: dict, spec: dict, shown_path) -> SpecError:
    """The 409 for a second sync of a pair (``job``: the one queued or running)."""
    return SpecError(
        f"another sync of {shown_path(spec['workspace'])} and {spec['storage']} is {job['state']}: job {job['id']}. "
        "Wait for it to end (or cancel it), then sync again: a sync transfers only what is still missing.",
        409,
        {"job_id": job["id"], "state": job["state"]},
    )


def plan_page(job: dict, output_dir: Path, offset: int, limit: int) -> dict:
    """A page of a sync preview's plan: ``{"job_id", "direction", "storage", "offset",
    "total", "actions": [{"op", "key", "bytes"}...], "copied", "updated", "deleted",
    "skipped", "refused", "bytes", "complete"}``. ``job``: the job dict; ``output_dir``: its
    output folder. Raises SpecError: 409 when the job is no sync preview or has no plan
    yet (naming its state), 400 for a bad offset/limit. Reads a file: call it from a
    worker thread."""
    if job.get("kind") != "sync":
        raise SpecError(f"job {shown(job['id'])} is a {job.get('kind')} job; only a sync preview has a plan", 409)
    if offset < 0 or not (1 <= limit <= MAX_PLAN_PAGE):
        raise SpecError(f"offset must be >= 0 and limit between 1 and {MAX_PLAN_PAGE}", 400)
    path = output_dir / "summary.json"
    try:
        summary = read_json_record(path, limit=MAX_SUMMARY_BYTES)
    except (JobError, OSError, ValueError):
        state = job.get("state")
        why = (
            "it has not finished listing yet" if state in ("queued", "running") else f"it is {state}: {job['message']}"
        )
        raise SpecError(f"job {job['id']} has no plan: {why}"[:600], 409, {"state": state}) from None
    plan = summary.get("plan")
    if not isinstance(plan, list):
        raise SpecError(
            f"job {job['id']} was a sync, not a preview: its plan was not kept (see its summary and log)", 409
        )
    actions = []
    for a in plan[offset : offset + limit]:
        if isinstance(a, dict) and isinstance(a.get("op"), str) and isinstance(a.get("key"), str):
            size = a.get("bytes")
            actions.append({"op": a["op"], "key": a["key"], "bytes": size if isinstance(size, int) else 0})

    def count(name: str) -> int:
        v = summary.get(name)
        return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else 0

    return {
        "job_id": job["id"],
        "direction": summary.get("direction") if summary.get("direction") in ("up", "down") else "up",
        "storage": str(summary.get("storage", ""))[:4096],
        "offset": offset,
        "total": len(plan),
        "actions": actions,
        **{name: count(name) for name in ("copied", "updated", "deleted", "skipped", "refused", "bytes")},
        "complete": offset + len(actions) >= len(plan),
    }
