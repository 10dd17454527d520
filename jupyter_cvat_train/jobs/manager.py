"""The job service: create (queue + launch), watch, cancel, delete and list jobs.

One :class:`JobManager` per runs root and process. The Jupyter server keeps one and
calls :meth:`JobManager.poll` from a background thread; the CLI makes one per command.
Nothing here imports Jupyter.

Truth and caches: a job's state is its folder's status.json (written by the job
process); the store (:mod:`.store`) indexes jobs and records what the launcher knows;
:meth:`snapshot` is an in-memory copy for fast listing, refreshed by :meth:`poll`.
When a job process is gone without writing a final state, the manager writes it:
``cancelled`` after a cancel request, otherwise ``failed`` ("interrupted" for a process
found after a restart, or its exit code for one this manager started).
"""
from __future__ import annotations

import secrets
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

from .jobdir import FINAL_STATES, JobDir, now_iso
from .kinds import get_kind
from .launcher import job_process, launch, process_alive, read_launch, signal_group
from .queue import Limits, jobs_to_start
from .store import JobStore

DEFAULT_CANCEL_GRACE = 10.0
INTERRUPTED = "interrupted"


def _resource_of(kind: str) -> str:
    try:
        return get_kind(kind).resource
    except KeyError:
        return "accelerator"


class JobNotFound(KeyError):
    """No job with this id in the runs root."""


def job_to_dict(row: dict, runs_root: Path) -> dict:
    """The public job shape shared by the API, the panel and the CLI::

        {"id", "kind", "state", "message", "progress": {"done", "total", "unit"},
         "created_at", "started_at", "ended_at", "dir", "outputs": {...}}

    ``dir`` is the absolute job folder here; the server makes it relative to root_dir.
    """
    progress = row.get("progress") or {}
    return {
        "id": row["id"], "kind": row["kind"], "state": row["state"], "message": row.get("message") or "",
        "progress": {"done": progress.get("done", 0), "total": progress.get("total"), "unit": progress.get("unit")},
        "created_at": row.get("created_at"), "started_at": row.get("started_at"), "ended_at": row.get("ended_at"),
        "dir": str(Path(runs_root) / row["id"]), "outputs": row.get("outputs") or {},
    }


class JobManager:
    """Jobs of one runs root (``<runs_root>/<job-id>/`` folders + ``jobs.sqlite``).

    limits: concurrent jobs per resource (:class:`.queue.Limits`); cancel_grace: seconds
    between SIGTERM and SIGKILL; python: interpreter for job processes (default: this
    one); env: environment for job processes (default: this process's); niceness: added
    to job processes' nice value.
    Thread-safe.
    """

    def __init__(self, runs_root: Path | str, *, limits: Limits | None = None,
                 cancel_grace: float = DEFAULT_CANCEL_GRACE, python: str | None = None,
                 env: dict[str, str] | None = None, niceness: int = 0):
        self.runs_root = Path(runs_root).resolve()
        self.store = JobStore(self.runs_root)
        self.limits = limits or Limits()
        self.cancel_grace = cancel_grace
        self.python = python
        self.env = env
        self.niceness = niceness
        self._procs: dict[str, subprocess.Popen] = {}
        self._lock = threading.RLock()
        self._snapshot: dict[str, dict] = {}  # changed under the lock
        self._published: dict[str, dict] = {}  # replaced whole, read without the lock
        self._version = 0

    # -- reading -----------------------------------------------------------------------
    def job_dir(self, job_id: str) -> JobDir:
        """The JobDir of ``job_id`` (checked to be a plain name inside the runs root)."""
        if not job_id or "/" in job_id or "\\" in job_id or job_id in (".", ".."):
            raise JobNotFound(job_id)
        return JobDir(self.runs_root / job_id)

    def get(self, job_id: str, refresh: bool = True) -> dict:
        """The job dict of ``job_id`` (refreshed from its folder). Raises JobNotFound."""
        with self._lock:
            row = self.store.get(job_id)
            if row is None:
                raise JobNotFound(job_id)
            if refresh and row["state"] not in FINAL_STATES:
                row = self._refresh(row)
                if row is None:
                    raise JobNotFound(job_id)
            return self._remember(row)

    def list_jobs(self, refresh: bool = True) -> list[dict]:
        """All jobs in creation order (unfinished ones refreshed from their folders)."""
        with self._lock:
            rows = self.store.list()
            if refresh:
                rows = [r2 for r in rows if (r2 := self._refresh(r) if r["state"] not in FINAL_STATES else r)]
            self._snapshot = {r["id"]: job_to_dict(r, self.runs_root) for r in rows}
            self._changed()
            return list(self._snapshot.values())

    def snapshot(self) -> list[dict]:
        """The job dicts as of the last poll/list/change made here, in creation order,
        without touching disk or waiting for a poll in progress (for servers)."""
        return list(self._published.values())

    def snapshot_get(self, job_id: str) -> dict | None:
        """One job dict as of the last poll, or None."""
        return self._published.get(job_id)

    def _changed(self) -> None:
        self._version += 1
        self._published = dict(self._snapshot)

    def _remember(self, row: dict) -> dict:
        job = job_to_dict(row, self.runs_root)
        if self._snapshot.get(job["id"]) != job:
            self._snapshot[job["id"]] = job
            self._changed()
        return job

    # -- creating and launching ---------------------------------------------------------
    def create(self, spec: dict) -> dict:
        """Make a job folder for ``spec`` (a checked spec, see :mod:`.specs`), queue it and
        start it if a slot is free. Returns the job dict. Raises KeyError for an unknown
        kind."""
        kind = get_kind(spec.get("kind", ""))
        job_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{kind.name}-{secrets.token_hex(3)}"
        jd = JobDir(self.runs_root / job_id).create(spec)
        with self._lock:
            self.store.add(job_id, kind.name, "queued", created_at=jd.read_status().get("created_at"),
                           progress={"done": 0, "total": None, "unit": None})
            self.schedule()
            return self.get(job_id, refresh=False)

    def schedule(self) -> list[str]:
        """Start queued jobs while their resource has free slots, oldest first.
        Returns the ids started."""
        with self._lock:
            rows = self.store.list(("queued", "running"))
            waiting = []
            for r in rows:
                if r["state"] == "queued" and not r["pid"] and not r["cancel_requested_at"]:
                    try:
                        get_kind(r["kind"])
                        waiting.append(r)
                    except KeyError as e:  # a folder of a kind this version does not know
                        self.job_dir(r["id"]).update_status(state="failed", message=e.args[0], ended_at=now_iso())
                        self.store.update(r["id"], state="failed", message=e.args[0], ended_at=now_iso())
            active = [r for r in rows if r["pid"] or r["state"] == "running"]
            started = []
            for row in jobs_to_start(waiting, active, self.limits, _resource_of):
                started.append(self._launch(row))
            return started

    def _launch(self, row: dict) -> str:
        jd = self.job_dir(row["id"])
        try:
            proc = launch(jd, get_kind(row["kind"]), python=self.python, gpu=row["gpu"], env=self.env,
                          niceness=self.niceness)
        except OSError as e:  # the interpreter could not start: our failure, recorded on the job
            jd.update_status(state="failed", message=f"could not start the job process: {e}", ended_at=now_iso())
            self.store.update(row["id"], state="failed", message=f"could not start the job process: {e}",
                              ended_at=now_iso())
            return row["id"]
        self._procs[row["id"]] = proc
        info = read_launch(jd)
        self.store.update(row["id"], state="running", pid=proc.pid, pid_start_time=info.get("pid_start_time"),
                          gpu=row["gpu"], started_at=info.get("launched_at"))
        return row["id"]

    # -- watching -----------------------------------------------------------------------
    def _alive(self, job_id: str, pid: int | None, start_time: float | None) -> bool:
        proc = self._procs.get(job_id)
        if proc is not None and proc.pid == pid:
            return proc.poll() is None
        return process_alive(pid, start_time)

    def _refresh(self, row: dict) -> dict | None:
        """Bring a non-final store row up to date with its folder and process; None (and
        the row dropped) when the folder was removed."""
        job_id = row["id"]
        jd = self.job_dir(job_id)
        if not jd.path.is_dir():
            self.store.forget(job_id)
            if self._snapshot.pop(job_id, None) is not None:
                self._changed()
            return None
        status = jd.read_status()
        pid, start_time = job_process(jd)
        pid = pid or row.get("pid")
        start_time = start_time if start_time is not None else row.get("pid_start_time")
        fields: dict = {}
        if status.get("state") not in FINAL_STATES:
            if not pid:  # never launched
                if row.get("cancel_requested_at") or status.get("state") == "cancelled":
                    status = jd.update_status(state="cancelled", message="cancelled before it started",
                                              ended_at=now_iso())
            elif self._alive(job_id, pid, start_time):
                now = time.time()
                if row.get("cancel_requested_at") and now - row["cancel_requested_at"] > self.cancel_grace:
                    signal_group(pid, start_time, signal.SIGKILL)
                fields["state"] = "running"
            else:
                status = jd.read_status()  # it may have finished between the two reads
                if status.get("state") not in FINAL_STATES:
                    status = jd.update_status(**self._death_fields(job_id, row))
        if status.get("state") in FINAL_STATES:
            fields["state"] = status["state"]
            self._procs.pop(job_id, None)
        for key in ("message", "progress", "outputs", "started_at", "ended_at"):
            if status.get(key) is not None:
                fields[key] = status[key]
        if pid and not row.get("pid"):
            fields.update(pid=pid, pid_start_time=start_time)
        changed = {k: v for k, v in fields.items() if row.get(k) != v}
        if changed:
            self.store.update(job_id, **changed)
            row = {**row, **changed}
        return row

    def _death_fields(self, job_id: str, row: dict) -> dict:
        proc = self._procs.get(job_id)
        code = proc.returncode if proc is not None else None
        if row.get("cancel_requested_at"):
            state, message = "cancelled", "cancelled by request"
        elif proc is not None:
            state = "failed"
            message = (f"the job process ended (exit code {code}) without reporting a result; see job.log"
                       if code is None or code >= 0 else
                       f"the job process was killed by signal {signal.Signals(-code).name}; see job.log")
        else:
            state, message = "failed", INTERRUPTED
        return {"state": state, "message": message, "ended_at": now_iso(), "exit_code": code}

    def poll(self) -> int:
        """Refresh every unfinished job, enforce cancel grace periods, start queued jobs.
        Returns a counter that changes whenever a job dict changed (for watchers)."""
        with self._lock:
            for row in self.store.list(("queued", "running")):
                row = self._refresh(row)
                if row is not None:
                    self._remember(row)
            if self.schedule():
                for row in self.store.list(("running",)):
                    self._remember(row)
            return self._version

    def reconcile(self) -> dict:
        """Index job folders not yet in the store and settle every unfinished job (see
        :func:`.reconcile.reconcile`). Call once at start."""
        from .reconcile import reconcile

        with self._lock:
            report = reconcile(self)
            self.list_jobs(refresh=False)
            return report

    # -- cancelling and deleting --------------------------------------------------------
    def cancel(self, job_id: str, wait: bool = False) -> dict:
        """Cancel a queued or running job: SIGTERM to its process group now, SIGKILL after
        the grace period (by :meth:`poll`, or here when ``wait``). The state ends
        ``cancelled``. A finished job is returned unchanged. Raises JobNotFound."""
        with self._lock:
            job = self.get(job_id)
            if job["state"] in FINAL_STATES:
                return job
            self.store.update(job_id, cancel_requested_at=time.time())
            pid, start_time = job_process(self.job_dir(job_id))
            if pid:
                signal_group(pid, start_time, signal.SIGTERM)
            job = self.get(job_id)
        if wait:
            job = self.wait(job_id, timeout=self.cancel_grace + 10)
        return job

    def wait(self, job_id: str, timeout: float | None = None, interval: float = 0.2) -> dict:
        """Poll until ``job_id`` is finished (or ``timeout`` seconds pass); the job dict."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self.poll()
            job = self.get(job_id)
            if job["state"] in FINAL_STATES or (deadline is not None and time.monotonic() > deadline):
                return job
            time.sleep(interval)

    def delete(self, job_id: str, remove_files: bool = False) -> dict | None:
        """Forget a finished job (and remove its folder when ``remove_files``): returns
        None. An unfinished job is cancelled instead: returns its job dict."""
        with self._lock:
            job = self.get(job_id)
            if job["state"] not in FINAL_STATES:
                return self.cancel(job_id)
            self.store.forget(job_id)
            self._snapshot.pop(job_id, None)
            self._changed()
            self._procs.pop(job_id, None)
        if remove_files:
            shutil.rmtree(self.job_dir(job_id).path, ignore_errors=True)
        return None

    def close(self) -> None:
        """Stop tracking child processes (they keep running: they are detached)."""
        with self._lock:
            self._procs.clear()
            self.store.close()
