"""Reconciliation: make the store agree with the job folders and the processes, when a
server (or the CLI) starts.

- A job folder (``job.json`` inside the runs root) missing from the store is indexed,
  unless it was deleted on purpose (the store's ``forgotten`` table).
- A store row whose folder is gone is dropped.
- A job recorded as queued/running whose process is gone — checked by pid *and*
  process start time (:func:`jupyter_cvat_train.jobs.runtime.process_start_time`), so a
  reused pid does not fool it — becomes ``failed`` with message "interrupted"
  (or ``cancelled`` if a cancel was requested); its status.json says so too.
- One still running is watched again; queued ones start in order on the next poll, if
  the scheduler itself queued them (see :mod:`.manager`); the others are failed there.

Every entry of the runs root is untrusted: symlinks, names the API cannot address and
folders without a job.json are skipped (logged); a folder whose job.json or status.json
cannot be read is indexed as a ``failed`` job whose message says what is wrong; bad rows
of the index are dropped and their folders indexed again. One bad entry never stops the
others.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

from .backends import read_handle
from .runtime import ACTIVE_STATES, FINAL_STATES, JobDir, JobError, JobState, now_iso, valid_text
from .store import JOB_ID_RE

if TYPE_CHECKING:
    from .manager import JobManager

INTERRUPTED = "interrupted"  # the message of a job whose process is gone without a final state


def reconcile(manager: JobManager) -> dict:
    """Settle the jobs of ``manager``'s runs root. Returns counts ``{"indexed",
    "dropped", "interrupted", "running", "queued", "skipped", "bad"}`` (skipped: entries
    that are not job folders; bad: job folders indexed as failed for an unreadable record,
    plus bad index rows dropped)."""
    store = manager.store
    report = {"indexed": 0, "dropped": 0, "interrupted": 0, "running": 0, "queued": 0, "skipped": 0, "bad": 0}
    for bad_id in store.remove_bad_rows():
        manager.report(bad_id, "a bad row of the job index was dropped; the job is indexed again from its folder")
        report["bad"] += 1
    known = set(store.ids())
    found = []
    for path in sorted(manager.runs_root.iterdir()):
        name = path.name
        if name in known or store.is_forgotten(name):
            continue
        jd = JobDir(path)
        if not os.path.lexists(jd.spec_path) or not jd.is_real_dir():
            if jd.is_real_dir() or path.is_symlink():
                report["skipped"] += 1
                if path.is_symlink():
                    manager.log.warning(
                        "cvat-train: %s in %s is a symlink, not a job folder: skipped", name[:80], manager.runs_root
                    )
            continue
        if not JOB_ID_RE.fullmatch(name):
            manager.log.warning(
                "cvat-train: job folder %r in %s has a name the API cannot address: skipped",
                name[:80],
                manager.runs_root,
            )
            report["skipped"] += 1
            continue
        try:
            found.append(_index_entry(jd, manager))
        except Exception:  # noqa: BLE001 - one bad folder never stops the others
            manager.log.exception("cvat-train: job folder %s could not be indexed: skipped", name)
            report["skipped"] += 1
    for _created_at, job_id, fields, problem in sorted(found, key=lambda f: (f[0], f[1])):
        try:
            store.add(job_id, **fields)
        except Exception:  # noqa: BLE001
            manager.log.exception("cvat-train: job folder %s could not be indexed: skipped", job_id)
            report["skipped"] += 1
            continue
        if problem:
            manager.report(job_id, problem)
            report["bad"] += 1
            if fields["kind"] == "unknown" and fields["state"] == JobState.FAILED:  # its folder says so too
                manager.write_status(
                    job_id, state=JobState.FAILED, message=fields["message"], ended_at=fields["ended_at"]
                )
        report["indexed"] += 1
    for row in store.list():
        if not JobDir(manager.runs_root / row["id"]).is_real_dir():
            store.forget(row["id"])
            report["dropped"] += 1
    manager.schedule_refusals()
    for row in store.list(ACTIVE_STATES):
        new = manager.refresh(row)
        if new is None:
            report["dropped"] += 1
        elif new["state"] == JobState.FAILED and new.get("message", "").startswith(INTERRUPTED):
            report["interrupted"] += 1
        elif new["state"] not in FINAL_STATES:
            report[new["state"]] += 1
    return report


def _index_entry(jd: JobDir, manager: JobManager) -> tuple[str, str, dict, str | None]:
    """(created_at, id, store fields, problem) for a job folder found on disk: its
    checked records (the process: what the job process wrote in status.json, else the
    backend's handle), or a failed job naming what could not be read."""
    status, problem = jd.load_status()
    try:
        spec = jd.read_spec()
    except JobError as e:
        message = valid_text(f"its job.json cannot be used: {e}")
        return (
            status.get("created_at") or "",
            jd.id,
            {
                "kind": "unknown",
                "state": JobState.FAILED,
                "message": message,
                "created_at": status.get("created_at"),
                "ended_at": now_iso(),
            },
            message,
        )
    kind = spec.get("kind")
    kind = kind if isinstance(kind, str) and re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", kind) else "unknown"
    handle = read_handle(jd, manager.backends)
    pid, start_time = (
        (status.get("pid"), status.get("pid_start_time"))
        if status.get("pid")
        else (handle.get("pid"), handle.get("pid_start_time"))
    )
    state = status.get("state", JobState.QUEUED)
    if state == JobState.QUEUED and pid:
        state = JobState.RUNNING
    fields = {
        "kind": kind,
        "state": state,
        "created_at": status.get("created_at"),
        "started_at": status.get("started_at") or handle.get("launched_at"),
        "pid": pid,
        "pid_start_time": start_time,
    }
    for key in ("message", "progress", "outputs", "ended_at"):
        if status.get(key) is not None:
            fields[key] = status[key]
    return status.get("created_at") or "", jd.id, fields, problem
