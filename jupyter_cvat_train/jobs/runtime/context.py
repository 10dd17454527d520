"""The runtime of a job process: :class:`JobContext`, :func:`run_job`, :func:`job_main`.

A job process (``python -m jupyter_cvat_train.jobs.run JOB_DIR``, see :mod:`..run`)
calls :func:`run_job` with its kind's function ``fn(ctx: JobContext) -> dict | None``;
the same function runs in the foreground from the CLI, where listeners drive a tqdm bar
instead. SIGTERM only sets ``ctx.cancelled``: each kind stops at a safe point.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .jobdir import SPEC_HASH_ENV, JobDir, now_iso, process_start_time
from .state import JobCancelled, JobError, JobState


class JobContext:
    """What a job function gets: its spec, its output folder, and ways to report.

    ``progress``/``event``/``warn`` write to events.jsonl and status.json (progress is
    written to status.json at most every ``status_interval`` seconds, and always at the
    end) and call the listeners (the CLI's tqdm bar). ``cancelled`` is set by SIGTERM;
    long loops call :meth:`check_cancelled` at safe points.
    """

    def __init__(
        self,
        job_dir: JobDir | Path | str,
        *,
        listeners: Iterable[Callable[[dict], None]] = (),
        status_interval: float = 0.5,
    ):
        self.dir = job_dir if isinstance(job_dir, JobDir) else JobDir(Path(job_dir))
        self.spec = self.dir.read_spec(os.environ.get(SPEC_HASH_ENV) or None)
        self.cancelled = threading.Event()
        self.listeners = list(listeners)
        self.status_interval = status_interval
        self._last_status_write = 0.0
        self._progress = {"done": 0, "total": None, "unit": None}
        self._lock = threading.Lock()

    @property
    def job_dir(self) -> JobDir:
        """The job folder (same as ``dir``)."""
        return self.dir

    @property
    def output_dir(self) -> Path:
        """``<job folder>/output``, created if needed. Raises JobError when something other
        than a real folder (e.g. a symlink) is in its place."""
        out = self.dir.output_dir
        out.mkdir(parents=True, exist_ok=True)
        if not JobDir(out).is_real_dir():
            raise JobError(f"{out} is not a folder (a symlink or a file is in its place): remove it and run again")
        return out

    def event(self, type: str, **fields: Any) -> dict:
        """Record an event ``{"type": type, "time": ISO-8601, **fields}``."""
        ev = {"type": type, "time": now_iso(), **fields}
        with self._lock:
            self.dir.append_event(ev)
        for listener in self.listeners:
            listener(ev)
        return ev

    def warn(self, message: str, **fields: Any) -> None:
        """A warning event; it also goes to stderr, hence to job.log."""
        print(f"WARNING: {message}", file=sys.stderr, flush=True)
        self.event("warning", message=message, **fields)

    def log(self, message: str) -> None:
        """A line for job.log (stdout of the job process)."""
        print(message, flush=True)

    def progress(self, done: float, total: float | None = None, unit: str | None = None, **extra: Any) -> None:
        """Report progress ``done`` of ``total`` ``unit`` (e.g. 30 of 120 "images")."""
        self.event("progress", done=done, total=total, unit=unit, **extra)
        self.record_progress({"done": done, "total": total, "unit": unit})

    def record_progress(self, progress: dict, *, final: bool = False) -> None:
        """Keep ``progress`` ({done, total, unit}) as the job's latest, for the final status,
        and write it to status.json at most every ``status_interval`` seconds (always when
        ``final`` or when done reaches total). :meth:`progress` calls it; so does a job
        process that relays progress events written by others (DDP ranks)."""
        self._progress = progress
        t = time.monotonic()
        total, done = progress.get("total"), progress.get("done") or 0
        if final or t - self._last_status_write >= self.status_interval or (total is not None and done >= total):
            self._last_status_write = t
            self.dir.update_status(progress=progress)

    def check_cancelled(self) -> None:
        """Raise :class:`JobCancelled` if a SIGTERM has arrived."""
        if self.cancelled.is_set():
            raise JobCancelled("cancelled by request")


def run_job(
    job_dir: Path | str,
    fn: Callable[[JobContext], dict | None],
    *,
    listeners: Iterable[Callable[[dict], None]] = (),
    handle_sigterm: bool = True,
) -> dict:
    """Run ``fn`` as the job in ``job_dir`` and keep status.json truthful.

    Sets state ``running`` (with pid and process start time, for reconciliation), then
    ``succeeded`` with ``outputs`` = fn's return value, ``cancelled`` if fn raises
    JobCancelled (after SIGTERM), or ``failed`` with the error's message (a traceback
    goes to stderr, i.e. job.log, for errors that are not JobError). SIGTERM and
    SIGINT only set ``ctx.cancelled``: fn decides where it is safe to stop.

    Returns the final status dict. Never raises for errors inside fn.
    """
    jd = JobDir(Path(job_dir))
    try:
        ctx = JobContext(jd, listeners=listeners)
    except JobError as e:
        jd.path.mkdir(parents=True, exist_ok=True)
        return jd.update_status(state=JobState.FAILED, message=str(e), exit_code=1, ended_at=now_iso())

    previous = {}
    if handle_sigterm and threading.current_thread() is threading.main_thread():

        def _on_signal(signum, frame):
            if ctx.cancelled.is_set() and signum == signal.SIGINT:
                raise KeyboardInterrupt
            ctx.cancelled.set()
            print(
                f"received {signal.Signals(signum).name}: stopping after the current step", file=sys.stderr, flush=True
            )

        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, _on_signal)

    pid = os.getpid()
    jd.update_status(
        state=JobState.RUNNING,
        pid=pid,
        pid_start_time=process_start_time(pid),
        started_at=now_iso(),
        ended_at=None,
        exit_code=None,
        message="",
    )
    ctx.event("state", state=JobState.RUNNING)
    state, message, outputs, code = JobState.FAILED, "", {}, 1
    try:
        outputs = fn(ctx) or {}
        if ctx.cancelled.is_set():
            state, message, code = JobState.CANCELLED, "cancelled by request", 0
        else:
            state, message, code = (
                JobState.SUCCEEDED,
                outputs.pop("message", "") if isinstance(outputs, dict) else "",
                0,
            )
    except JobCancelled as e:
        state, message, code = JobState.CANCELLED, str(e) or "cancelled by request", 0
        outputs = getattr(e, "outputs", {}) or {}
    except JobError as e:
        state, message, code = JobState.FAILED, str(e), 1
        print(f"ERROR: {e}", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        state, message, code = JobState.CANCELLED, "interrupted by the user", 130
    except Exception as e:  # noqa: BLE001 - the job must record any failure
        traceback.print_exc()
        state, message, code = JobState.FAILED, f"{type(e).__name__}: {e}", 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    fields = {
        "state": state,
        "message": message,
        "exit_code": code,
        "ended_at": now_iso(),
        "outputs": outputs if isinstance(outputs, dict) else {},
    }
    if ctx._progress["total"] is not None or ctx._progress["done"]:
        fields["progress"] = ctx._progress
    status = jd.update_status(**fields)
    ctx.event("state", state=state, message=message)
    return status


def job_main(fn: Callable[[JobContext], dict | None], argv: list[str] | None = None) -> None:
    """Entry point body of a job process (``python -m jupyter_cvat_train.jobs.run JOB_DIR``
    and the kinds' own ``python -m jupyter_cvat_train.<kind> JOB_DIR``): runs the job and
    exits 0 when it succeeded or was cancelled, 1 when it failed, 2 on bad usage."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m jupyter_cvat_train.jobs.run JOB_DIR", file=sys.stderr)
        sys.exit(2)
    status = run_job(argv[0], fn)
    sys.exit(0 if status.get("state") in (JobState.SUCCEEDED, JobState.CANCELLED) else 1)
