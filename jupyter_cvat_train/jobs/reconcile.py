"""Reconciliation: make the store agree with the job folders and the processes, when a
server (or the CLI) starts.

- A job folder (``job.json`` inside the runs root) missing from the store is indexed,
  unless it was deleted on purpose (the store's ``forgotten`` table).
- A store row whose folder is gone is dropped.
- A job recorded as queued/running whose process is gone — checked by pid *and*
  process start time (:func:`jupyter_cvat_train.jobs.jobdir.process_start_time`), so a
  reused pid does not fool it — becomes ``failed`` with message "interrupted"
  (or ``cancelled`` if a cancel was requested); its status.json says so too.
- One still running is watched again; queued ones start in order on the next poll.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .jobdir import FINAL_STATES, JobDir
from .launcher import job_process, read_launch

if TYPE_CHECKING:
    from .manager import JobManager


def reconcile(manager: "JobManager") -> dict:
    """Settle the jobs of ``manager``'s runs root. Returns counts ``{"indexed",
    "dropped", "interrupted", "running", "queued"}``."""
    store = manager.store
    report = {"indexed": 0, "dropped": 0, "interrupted": 0, "running": 0, "queued": 0}
    known = set(store.ids())
    found = []
    for path in manager.runs_root.iterdir():
        jd = JobDir(path)
        if path.name in known or not jd.spec_path.is_file() or store.is_forgotten(path.name):
            continue
        try:
            spec = jd.read_spec()
        except Exception:  # noqa: BLE001 - an unreadable spec is not a job we can index
            continue
        status = jd.read_status()
        found.append((status.get("created_at") or "", path.name, spec, status, jd))
    for created_at, job_id, spec, status, jd in sorted(found, key=lambda f: (f[0], f[1])):
        pid, start_time = job_process(jd)
        state = status.get("state", "queued")
        if state == "queued" and pid:
            state = "running"
        store.add(job_id, str(spec.get("kind", "unknown")), state, created_at=created_at or None,
                  started_at=status.get("started_at") or read_launch(jd).get("launched_at"),
                  pid=pid, pid_start_time=start_time)
        report["indexed"] += 1
    for row in store.list():
        if not (manager.runs_root / row["id"]).is_dir():
            store.forget(row["id"])
            report["dropped"] += 1
    for row in store.list(("queued", "running")):
        new = manager._refresh(row)
        if new is None:
            report["dropped"] += 1
        elif new["state"] == "failed" and new.get("message") == "interrupted":
            report["interrupted"] += 1
        elif new["state"] not in FINAL_STATES:
            report[new["state"]] += 1
    return report
