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

Scheduling: any number of managers (processes) may share a runs root; each may create
(enqueue) jobs, read them, and cancel them. Only the holder of the runs root's scheduler
lease (:mod:`.scheduler`, taken when free by :meth:`JobManager.schedule`) starts queued
jobs and fails those that may never start. Where a job runs is the backend's business
(:mod:`.backends`; the local one by default): the manager launches, polls and cancels
through that interface, and keeps the handle in the job folder (launch.json).

The runs root is untrusted (any Contents API user can write it). A queued job starts
only if this scheduler enqueued it (:mod:`.provenance`: its job.json still carries the
signature :meth:`JobManager.create` stored), it was never started before, and its spec
passes :func:`.specs.check_spec` against the server root again; otherwise it is failed
with a message. A cancel reaches only a process the backend verifies as the job's process.
A bad record is reported (logged, and on that job) and never stops the others.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import signal
import threading
import time
from pathlib import Path

from .backends import HANDLE_NAME, JobBackend, LaunchRequest, Poll, read_handle, write_handle
from .backends.local import LocalBackend
from .provenance import load_key, sign, verify
from .queue import Limits, jobs_to_start
from .reconcile import INTERRUPTED, reconcile
from .registry import get_kind
from .run import RUN_ENV
from .runtime import (
    ACTIVE_STATES,
    FINAL_STATES,
    SPEC_HASH_ENV,
    JobDir,
    JobState,
    RecordError,
    json_bytes,
    now_iso,
    read_record,
    spec_sha256,
    valid_text,
)
from .scheduler import SchedulerLease
from .store import JOB_ID_RE, JobStore

DEFAULT_CANCEL_GRACE = 10.0
NOT_ENQUEUED = (
    "not started: this job was not queued through cvat-train (the API, the panel or the CLI), or its "
    "job.json was changed after it was queued; job folders written by hand are never run. Submit the "
    "job again"
)


def _resource_of(kind: str) -> str:
    try:
        return get_kind(kind).resource
    except KeyError:
        return "accelerator"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


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
        "id": row["id"],
        "kind": row["kind"],
        "state": row["state"],
        "message": row.get("message") or "",
        "progress": {"done": progress.get("done", 0), "total": progress.get("total"), "unit": progress.get("unit")},
        "created_at": row.get("created_at"),
        "started_at": row.get("started_at"),
        "ended_at": row.get("ended_at"),
        "dir": str(Path(runs_root) / row["id"]),
        "outputs": row.get("outputs") or {},
    }


class JobManager:
    """Jobs of one runs root (``<runs_root>/<job-id>/`` folders + ``jobs.sqlite``).

    root_dir: the folder client paths resolve inside (the server's root_dir), against
    which a queued spec is checked again before it starts; default: the runs root's
    parent. key_file: the signing key of queued jobs (default
    :func:`.provenance.default_key_file`). limits: concurrent jobs per resource
    (:class:`.queue.Limits`); cancel_grace: seconds between SIGTERM and SIGKILL; python:
    interpreter for job processes (default: this one); env: environment for job
    processes (default: this process's); niceness: added to job processes' nice value
    (python and niceness configure the default backend); backend: where jobs run
    (default :class:`.backends.local.LocalBackend`); backends: other backends a job's
    spec may name with ``"backend"`` (e.g. a :class:`.backends.ray.RayBackend`), and that
    the launch.json of jobs started before may name; log: a logging.Logger for bad records
    (default: this module's); spec_options: keyword arguments of
    :func:`.specs.check_spec` for that check (the server's, e.g. ``allowed_endpoint_urls``);
    owner: who this process is, shown to others while it holds the scheduler lease.
    The lease, once taken (by :meth:`schedule`, :meth:`create`, :meth:`poll` or
    :meth:`reconcile`), is kept until :meth:`close` (or ``lease.release()``): a
    long-lived process that does not keep polling should give it up.
    Thread-safe.
    """

    def __init__(
        self,
        runs_root: Path | str,
        *,
        root_dir: Path | str | None = None,
        key_file: Path | str | None = None,
        limits: Limits | None = None,
        cancel_grace: float = DEFAULT_CANCEL_GRACE,
        python: str | None = None,
        env: dict[str, str] | None = None,
        niceness: int = 0,
        log: logging.Logger | None = None,
        spec_options: dict | None = None,
        backend: JobBackend | None = None,
        backends: tuple[JobBackend, ...] | list[JobBackend] = (),
        owner: str = "",
    ):
        self.runs_root = Path(runs_root).resolve()
        self.root_dir = Path(os.path.realpath(root_dir if root_dir is not None else self.runs_root.parent))
        self.log = log or logging.getLogger(__name__)
        self.key = load_key(key_file)
        self.spec_options = dict(spec_options or {})
        self._reported: set[tuple[str, str]] = set()
        self._foreign: set[str] = set()  # jobs whose live process is not verifiably their job process
        self._noted: set[str] = set()  # jobs whose message is a backend's note (Poll.note) for now
        self.store = JobStore(self.runs_root)
        self.lease = SchedulerLease(self.runs_root, owner or f"cvat-train (pid {os.getpid()})")
        self.limits = limits or Limits()
        self.cancel_grace = cancel_grace
        self.env = env
        self.backend = backend or LocalBackend(python=python, niceness=niceness)
        self.backends: dict[str, JobBackend] = {self.backend.name: self.backend}
        for b in backends:  # others a job may name (``"backend"`` in its spec), e.g. ray
            self.backends.setdefault(b.name, b)
        self._launched: dict[str, dict] = {}  # job id -> the handle this manager launched it with
        self._lock = threading.RLock()
        self._snapshot: dict[str, dict] = {}  # changed under the lock
        self._published: dict[str, dict] = {}  # replaced whole, read without the lock
        self._version = 0

    # -- reading -----------------------------------------------------------------------
    def job_dir(self, job_id: str) -> JobDir:
        """The JobDir of ``job_id`` (checked to be a plain name inside the runs root:
        letters, digits, ``.``, ``_``, ``-``). Raises JobNotFound."""
        if not isinstance(job_id, str) or not JOB_ID_RE.fullmatch(job_id) or job_id in (".", ".."):
            raise JobNotFound(job_id)
        return JobDir(self.runs_root / job_id)

    def report(self, job_id: str, problem: str) -> None:
        """Log a bad record of job ``job_id`` (once per distinct problem)."""
        if (job_id, problem) not in self._reported:
            self._reported.add((job_id, problem))
            self.log.warning("cvat-train: job %s in %s: %s", job_id, self.runs_root, problem)

    def get(self, job_id: str, refresh: bool = True) -> dict:
        """The job dict of ``job_id`` (refreshed from its folder). Raises JobNotFound."""
        with self._lock:
            row = self.store.get(job_id)
            if row is None:
                raise JobNotFound(job_id)
            if refresh and row["state"] not in FINAL_STATES:
                row = self.refresh(row)
                if row is None:
                    raise JobNotFound(job_id)
            return self._remember(row)

    def list_jobs(self, refresh: bool = True) -> list[dict]:
        """All jobs in creation order (unfinished ones refreshed from their folders)."""
        with self._lock:
            rows = self.store.list()
            if refresh:
                rows = [r2 for r in rows if (r2 := self.refresh(r) if r["state"] not in FINAL_STATES else r)]
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
        spec_bytes = json_bytes(spec)
        jd = JobDir(self.runs_root / job_id).create(spec, spec_bytes)
        with self._lock:
            self.store.add(
                job_id,
                kind.name,
                JobState.QUEUED,
                created_at=jd.read_status().get("created_at"),
                progress={"done": 0, "total": None, "unit": None},
                token=sign(self.key, job_id, spec_bytes),
            )
            self.schedule()
            return self.get(job_id, refresh=False)

    @property
    def is_scheduler(self) -> bool:
        """True if this manager holds the runs root's scheduler lease (as last asked)."""
        return self.lease.held

    def schedule(self) -> list[str]:
        """If this manager holds the scheduler lease (taken now when free): start queued
        jobs while their resource has free slots on this machine, oldest first, and jobs
        for a cluster's backend at once; fail those that may never start
        (:meth:`_refusal`). Returns the ids started (none without the lease)."""
        with self._lock:
            if not self.lease.acquire():
                return []
            waiting = self.schedule_refusals()
            rows = self.store.list(ACTIVE_STATES)
            # a live process that is not verifiably a job process of its folder (a planted
            # record, a foreground CLI run) takes no slot: it must not block the queue
            active = [r for r in rows if (r["pid"] or r["state"] == JobState.RUNNING) and r["id"] not in self._foreign]
            # jobs for a cluster start at once (the cluster queues them); the others queue
            # for this machine's limits and GPUs, beside the jobs running here. Where a queued
            # job goes is its spec's say (_launch checks the spec); where a running one runs,
            # the handle it was launched with.
            specs = {r["id"]: self._queued_spec(r) for r in waiting}
            here, on_cluster = [], []
            for r in waiting:
                backend = self._backend_named(specs[r["id"]].get("backend")) or self.backend
                (here if backend.uses_this_machine else on_cluster).append(r)
            active = [r for r in active if self._runs_here(r)]
            started = []
            for row in [{**r, "gpu": None} for r in on_cluster] + jobs_to_start(
                here, active, self.limits, _resource_of, lambda r: self._gpus_of(r, specs[r["id"]])
            ):
                if self._launch(row):
                    started.append(row["id"])
            return started

    def _queued_spec(self, row: dict) -> dict:
        """Queued job ``row``'s job.json as it is now, unchecked ({} when it cannot be
        read: :meth:`_launch` then fails the job)."""
        try:
            spec = json.loads(read_record(self.job_dir(row["id"]).spec_path))
        except (OSError, RecordError, ValueError):
            return {}
        return spec if isinstance(spec, dict) else {}

    def _backend_named(self, name) -> JobBackend | None:
        """The backend a spec's ``backend`` names: the default for none, None for one not
        configured here."""
        if not name:
            return self.backend
        return self.backends.get(name) if isinstance(name, str) else None

    def _runs_here(self, row: dict) -> bool:
        """Whether running job ``row`` uses this machine: by the backend of the handle it
        was launched with (this manager's, else its launch.json)."""
        handle = self._launched.get(row["id"]) or read_handle(self.job_dir(row["id"]), self.backends)
        return self.backends.get(handle.get("backend"), self.backend).uses_this_machine

    @staticmethod
    def _gpus_of(row: dict, spec: dict) -> int:
        """How many GPUs queued job ``row`` with job.json ``spec`` wants: its kind's
        ``gpus_of``; 1 for a kind no longer registered (:meth:`_refusal` fails it)."""
        try:
            return get_kind(row["kind"]).gpus_of(spec)
        except KeyError:
            return 1

    def schedule_refusals(self) -> list[dict]:
        """If this manager holds the scheduler lease (taken now when free): fail every
        queued job that may never start (:meth:`_refusal`); returns the rows of those
        still waiting to start, oldest first (none without the lease)."""
        with self._lock:
            if not self.lease.acquire():
                return []
            waiting = []
            for r in self.store.list((JobState.QUEUED,)):
                if not r["pid"] and not r["cancel_requested_at"]:
                    refusal = self._refusal(r)
                    if refusal is None:
                        waiting.append(r)
                    else:
                        self._fail(r["id"], refusal)
            return waiting

    def _refusal(self, row: dict) -> str | None:
        """Why queued job ``row`` may never start (as its failure message), or None: an
        unknown kind, an unreadable or tampered status, an earlier start, or a job.json
        this scheduler did not sign."""
        try:
            get_kind(row["kind"])
        except KeyError as e:
            return e.args[0]
        jd = self.job_dir(row["id"])
        status, problem = jd.load_status()
        if problem:
            return f"not started: {problem}"
        if status.get("state") != JobState.QUEUED:
            return f"not started: its status.json says {status.get('state') or 'nothing'!r}, not 'queued'"
        if os.path.lexists(jd.path / HANDLE_NAME):
            return "not started again: it was started before (launch.json exists); a job never runs twice"
        try:
            spec_bytes = read_record(jd.spec_path)
        except (FileNotFoundError, RecordError) as e:
            return f"not started: job.json cannot be read ({e})"
        if not verify(self.key, row["id"], spec_bytes, row.get("token")):
            return NOT_ENQUEUED
        return None

    def _fail(self, job_id: str, message: str) -> None:
        """Mark job ``job_id`` failed with ``message`` in the store and (if it can be
        written) in its status.json; logged."""
        message = valid_text(message)
        ended = now_iso()
        self.report(job_id, message)
        self.write_status(job_id, state=JobState.FAILED, message=message, ended_at=ended)
        with self._lock:
            self.store.update(job_id, state=JobState.FAILED, message=message, ended_at=ended)
            row = self.store.get(job_id)
            if row is not None:
                self._remember(row)  # watchers (the API's snapshot) see it at once

    def write_status(self, job_id: str, **fields) -> dict:
        """Merge ``fields`` into the job's status.json; when that cannot be written (a
        folder or an unwritable file in its place) the failure is reported and the
        merged fields are returned all the same."""
        jd = self.job_dir(job_id)
        try:
            return jd.update_status(**fields)
        except OSError as e:
            self.report(job_id, f"cannot write status.json: {e.strerror or e}")
            return {**jd.read_status(), **fields}

    def _launch(self, row: dict) -> bool:
        """Check queued job ``row`` again and start it through the backend; a job that
        fails the check is failed. True if it started."""
        jd = self.job_dir(row["id"])
        kind = get_kind(row["kind"])
        try:  # the same checks as a client's request, against the files as they are now
            from .specs import SpecError, check_spec

            spec_bytes = read_record(jd.spec_path)
            check_spec(json.loads(spec_bytes), self.root_dir, **self.spec_options)
            if not verify(self.key, row["id"], spec_bytes, row.get("token")):
                raise SpecError(NOT_ENQUEUED)
        except SpecError as e:
            self._fail(
                row["id"],
                str(e)
                if str(e).startswith("not started")
                else f"not started: its spec no longer passes the checks: {e}",
            )
            return False
        except Exception as e:  # noqa: BLE001 - a bad spec must not stop the queue
            self.log.exception("cvat-train: checking job %s before its start failed", row["id"])
            self._fail(row["id"], f"not started: its spec could not be checked ({type(e).__name__}: {e})")
            return False
        spec_backend = json.loads(spec_bytes).get("backend")
        backend = self._backend_named(spec_backend)
        if backend is None:
            self._fail(
                row["id"],
                f"not started: its backend {spec_backend!r} is not configured here "
                f"(configured: {', '.join(sorted(self.backends))}); submit it again with one of them",
            )
            return False
        env = dict(os.environ if self.env is None else self.env)
        env[SPEC_HASH_ENV] = spec_sha256(spec_bytes)  # the job process reads only this spec
        env[RUN_ENV] = kind.run  # ... and runs this kind's function, as registered here
        try:  # claim the start: launch.json made exclusively, so a job never starts twice
            fd = os.open(
                jd.path / HANDLE_NAME, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644
            )
            try:  # naming the backend: a launcher that dies before writing the handle leaves the job findable
                os.write(fd, json_bytes({"backend": backend.name}))
            finally:
                os.close(fd)
        except FileExistsError:
            return False  # started by another process already, or planted: settled by the next refresh
        except OSError as e:
            self._fail(row["id"], f"could not start the job process: cannot write {HANDLE_NAME}: {e.strerror or e}")
            return False
        try:
            handle = backend.launch(LaunchRequest(jd, kind, env, row["gpu"]))
        except OSError as e:  # the interpreter could not start: our failure, recorded on the job
            self._fail(row["id"], f"could not start the job process: {e}")
            return False
        try:
            write_handle(jd, handle)
        except OSError as e:  # something took launch.json's place: no job runs unrecorded
            backend.cancel(jd, handle, 0)
            self._fail(row["id"], f"stopped at its start: cannot write {HANDLE_NAME} ({e.strerror or e})")
            return False
        self._launched[row["id"]] = handle
        self.store.update(
            row["id"],
            state=JobState.RUNNING,
            pid=handle.get("pid"),
            pid_start_time=handle.get("pid_start_time"),
            gpu=row["gpu"],
            started_at=now_iso(),
        )
        return True

    # -- watching -----------------------------------------------------------------------
    def _process_of(self, job_id: str, row: dict) -> tuple[JobBackend, dict, Poll]:
        """(backend, handle, poll) of the job's process. Candidates: the handle this
        manager launched it with; the backend's handles from the job folder (launch.json,
        and what the job process wrote of itself in status.json); the store row's pid.
        The first one the backend verifies as this job's live process wins; else the
        first live one (verified False: shown, never signalled); else the first one (not
        alive; ``{}`` when the job has no process record at all)."""
        jd = self.job_dir(job_id)
        stored = read_handle(jd, self.backends)
        backend = self.backends.get(stored.get("backend"), self.backend)
        indexed = backend.check_handle({"pid": row.get("pid"), "pid_start_time": row.get("pid_start_time")})
        polls = [
            (h, backend.poll(jd, h))
            for h in backend.candidates(jd, [self._launched.get(job_id) or {}, stored, indexed])
        ]
        for h, p in polls:
            if p.alive and p.verified:
                return backend, h, p
        for h, p in polls:
            if p.alive:
                return backend, h, p
        for h, p in polls:
            if p.exit_code is not None:
                return backend, h, p
        return (backend, *polls[0]) if polls else (backend, {}, Poll(alive=False))

    def _cancel_process(self, job_id: str, grace: float) -> bool:
        """Ask the job's process to stop (``grace > 0``) or stop it now: only a process
        the backend verifies as this job's (see :meth:`_process_of`). True if sent."""
        backend, handle, poll = self._process_of(job_id, self.store.get(job_id) or {})
        return poll.alive and poll.verified and backend.cancel(self.job_dir(job_id), handle, grace)

    def _refresh(self, row: dict) -> dict | None:
        """Bring a non-final store row up to date with its folder and process; None (and
        the row dropped) when the folder was removed (or replaced by a symlink)."""
        job_id = row["id"]
        jd = self.job_dir(job_id)
        if not jd.is_real_dir():
            self.store.forget(job_id)
            if self._snapshot.pop(job_id, None) is not None:
                self._changed()
            return None
        status, problem = jd.load_status()
        if problem:
            self.report(job_id, problem)
        backend, handle, poll = self._process_of(job_id, row)
        pid, verified = handle.get("pid"), poll.verified
        fields: dict = {}
        if status.get("state") not in FINAL_STATES:
            if not handle:  # never launched
                if row.get("cancel_requested_at") or status.get("state") == JobState.CANCELLED:
                    status = self.write_status(
                        job_id, state=JobState.CANCELLED, message="cancelled before it started", ended_at=now_iso()
                    )
                elif JobState.RUNNING in (
                    row["state"],
                    status.get("state"),
                ):  # no process to watch: it would hold a slot
                    status = self.write_status(
                        job_id,
                        **self._death_fields(
                            job_id, row, poll, problem or "its status says running but names no process"
                        ),
                    )
            elif poll.alive and poll.note and not verified:
                # the backend cannot tell (a cluster unreachable): wait, say why
                self.report(job_id, poll.note)
                self._noted.add(job_id)
                fields["state"] = JobState.RUNNING
                fields["message"] = poll.note
            elif poll.alive:
                if verified:
                    self._foreign.discard(job_id)
                elif job_id not in self._foreign:
                    self._foreign.add(job_id)
                    self.report(
                        job_id,
                        f"its process {pid} is not a cvat-train job process of this folder: "
                        "it is shown but never signalled, and takes no queue slot",
                    )
                now = time.time()
                if row.get("cancel_requested_at") and not verified:
                    status = self.write_status(
                        job_id,
                        state=JobState.CANCELLED,
                        ended_at=now_iso(),
                        message=(
                            f"cancelled; process {pid} was not signalled: it is not this job's process "
                            "(its records do not match)"
                        ),
                    )
                elif row.get("cancel_requested_at") and now - row["cancel_requested_at"] > self.cancel_grace:
                    backend.cancel(jd, handle, 0)  # the grace period is over: stop it by force
                fields["state"] = JobState.RUNNING
                if poll.note:  # what its own process cannot say yet (waiting in a cluster's queue)
                    self._noted.add(job_id)
                    fields["message"] = poll.note
            else:
                status, problem = jd.load_status()  # it may have finished between the two reads
                if status.get("state") not in FINAL_STATES:
                    status = self.write_status(
                        job_id, **self._death_fields(job_id, row, poll, problem if not status else None)
                    )
        if job_id in self._noted and "message" not in fields:  # the backend knows again: the job's own message
            self._noted.discard(job_id)
            fields["message"] = status.get("message") or ""
        if status.get("state") in FINAL_STATES:
            fields["state"] = status["state"]
            launched = self._launched.pop(job_id, None)
            if launched:
                backend.forget(launched)
        for key in ("message", "progress", "outputs", "started_at", "ended_at"):
            if status.get(key) is not None and not (key == "message" and "message" in fields):
                fields[key] = status[key]
        if pid and not row.get("pid"):
            fields.update(pid=pid, pid_start_time=handle.get("pid_start_time"))
        changed = {k: v for k, v in fields.items() if row.get(k) != v}
        if changed:
            self.store.update(job_id, **changed)
            row = {**row, **changed}
        return row

    def refresh(self, row: dict) -> dict | None:
        """Bring store row ``row`` (of an unfinished job) up to date with its folder and
        its process, settling a job whose process is gone; the new row, or None when its
        folder was removed. An unexpected error is reported and the job failed, so one bad
        job folder never stops the others."""
        try:
            return self._refresh(row)
        except Exception as e:  # noqa: BLE001
            self.log.exception("cvat-train: refreshing job %s failed", row["id"])
            self._fail(row["id"], f"its record cannot be read ({type(e).__name__}); see the server log")
            return self.store.get(row["id"])

    def _death_fields(self, job_id: str, row: dict, poll: Poll, problem: str | None = None) -> dict:
        """The final status of a job whose process is gone without writing one: cancelled
        after a cancel request; failed with its exit code when this manager launched it;
        else failed, "interrupted"."""
        code = poll.exit_code
        if row.get("cancel_requested_at"):
            state, message = JobState.CANCELLED, "cancelled by request"
        elif job_id in self._launched:
            state = JobState.FAILED
            message = (
                f"the job process ended (exit code {code}) without reporting a result; see job.log"
                if code is None or code >= 0
                else f"the job process was killed by signal {_signal_name(-code)}; see job.log"
            )
        else:
            state, message = JobState.FAILED, INTERRUPTED
        if problem:  # its record is unreadable: say so rather than guess
            message = f"{message} ({problem})"
        if poll.note:  # what the backend knows of its end (a cluster's own log)
            message = f"{message}; {poll.note}"
        return {"state": state, "message": message, "ended_at": now_iso(), "exit_code": code}

    def poll(self) -> int:
        """Refresh every unfinished job, enforce cancel grace periods, start queued jobs.
        Returns a counter that changes whenever a job dict changed (for watchers)."""
        with self._lock:
            active = set()
            for row in self.store.list(ACTIVE_STATES):
                row = self.refresh(row)
                if row is not None:
                    active.add(row["id"])
                    self._remember(row)
            for job_id in [i for i, j in self._snapshot.items() if j["state"] not in FINAL_STATES and i not in active]:
                row = self.store.get(job_id)  # settled (or forgotten) by another process sharing the runs root
                if row is not None:
                    self._remember(row)
                elif self._snapshot.pop(job_id, None) is not None:
                    self._changed()
            if self.schedule():
                for row in self.store.list((JobState.RUNNING,)):
                    self._remember(row)
            return self._version

    def reconcile(self) -> dict:
        """Index job folders not yet in the store and settle every unfinished job (see
        :func:`.reconcile.reconcile`). Call once at start."""
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
            self._cancel_process(job_id, self.cancel_grace)  # only a verified job process; the refresh settles the rest
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
            self._launched.pop(job_id, None)
        if remove_files:
            shutil.rmtree(self.job_dir(job_id).path, ignore_errors=True)
        return None

    def close(self) -> None:
        """Give the scheduler lease up and stop tracking job processes (they keep running:
        they are detached)."""
        with self._lock:
            self.lease.release()
            self._launched.clear()
            for backend in self.backends.values():
                close = getattr(backend, "close", None)
                if close is not None:
                    close()
            self.store.close()
