"""The job folder contract (see docs/architecture.md) and the runtime a job process uses.

A job folder::

    <runs_root>/<job-id>/
      job.json       the spec: {"kind": "train"|"annotate"|"sync"|"validate", ...}
      status.json    owned by the job process, replaced atomically (temp file + rename):
                     {state, pid, pid_start_time, created_at, started_at, ended_at,
                      exit_code, message, progress: {done, total, unit}, outputs}
      events.jsonl   one JSON object per line, each with "type" and "time"
      job.log        the process's stdout + stderr (the launcher redirects them)
      output/        what the job produced

States: queued -> running -> succeeded | failed | cancelled.

A job process (``python -m jupyter_cvat_train.<kind> JOB_DIR``) calls :func:`run_job`
with a function ``fn(ctx: JobContext) -> dict | None``; the same function runs in the
foreground from the CLI, where listeners drive a tqdm bar instead.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

STATES = ("queued", "running", "succeeded", "failed", "cancelled")
FINAL_STATES = ("succeeded", "failed", "cancelled")


class JobError(Exception):
    """A failure the user can act on; its message is shown as the job's message
    (no traceback). Raise it for bad input found at run time."""


class JobCancelled(Exception):
    """Raised inside a job function (by :meth:`JobContext.check_cancelled`) after a
    SIGTERM, once the work in hand is saved."""


def now_iso() -> str:
    """The current UTC time as ISO 8601 with milliseconds and a ``Z`` suffix."""
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` via a temp file in the same folder and
    ``os.replace``, so readers see the old or the new file, never a partial one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, default=str)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def process_start_time(pid: int) -> float | None:
    """Start time of process ``pid`` in clock ticks since boot (Linux ``/proc/PID/stat``
    field 22), or None if the process does not exist. With the pid it identifies a
    process even after the pid is reused."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode(errors="replace")
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    rest = data[data.rindex(")") + 2 :].split()
    return float(rest[19])


@dataclass
class JobDir:
    """Paths and file I/O of one job folder. Cheap to construct; touches no file."""

    path: Path

    def __post_init__(self) -> None:
        self.path = Path(self.path)

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def spec_path(self) -> Path:
        return self.path / "job.json"

    @property
    def status_path(self) -> Path:
        return self.path / "status.json"

    @property
    def events_path(self) -> Path:
        return self.path / "events.jsonl"

    @property
    def log_path(self) -> Path:
        return self.path / "job.log"

    @property
    def output_dir(self) -> Path:
        return self.path / "output"

    def create(self, spec: dict) -> "JobDir":
        """Create the folder with ``job.json`` = spec and a ``queued`` status.
        Raises FileExistsError if the folder already holds a job.json."""
        self.path.mkdir(parents=True, exist_ok=True)
        if self.spec_path.exists():
            raise FileExistsError(f"{self.spec_path} already exists: choose a new job folder")
        write_json_atomic(self.spec_path, spec)
        write_json_atomic(self.status_path, {"state": "queued", "created_at": now_iso(),
                                             "progress": {"done": 0, "total": None, "unit": None}})
        return self

    def read_spec(self) -> dict:
        """The parsed ``job.json``. Raises JobError naming the file when it is missing or
        not a JSON object."""
        try:
            spec = json.loads(self.spec_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise JobError(f"{self.spec_path} not found: a job folder needs a job.json spec") from None
        except (OSError, ValueError) as e:
            raise JobError(f"{self.spec_path} is not valid JSON: {e}") from None
        if not isinstance(spec, dict):
            raise JobError(f"{self.spec_path} must hold a JSON object")
        return spec

    def read_status(self) -> dict:
        """The parsed ``status.json``, or ``{}`` when it is missing or unreadable."""
        try:
            data = json.loads(self.status_path.read_text(encoding="utf-8"))
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def update_status(self, **fields: Any) -> dict:
        """Merge ``fields`` into status.json (atomically) and return the new status.
        Only the job process (or, for a dead process, reconciliation) calls this."""
        status = self.read_status()
        status.update(fields)
        write_json_atomic(self.status_path, status)
        return status

    def append_event(self, event: dict) -> None:
        """Append one event (a JSON object) as one line of events.jsonl."""
        line = json.dumps(event, default=str, separators=(",", ":")) + "\n"
        with open(self.events_path, "a", encoding="utf-8") as f:
            f.write(line)

    def read_events(self) -> list[dict]:
        """All events so far; a partly written last line is skipped."""
        out = []
        try:
            with open(self.events_path, encoding="utf-8") as f:
                for line in f:
                    try:
                        out.append(json.loads(line))
                    except ValueError:
                        pass
        except FileNotFoundError:
            pass
        return out


class JobContext:
    """What a job function gets: its spec, its output folder, and ways to report.

    ``progress``/``event``/``warn`` write to events.jsonl and status.json (progress is
    written to status.json at most every ``status_interval`` seconds, and always at the
    end) and call the listeners (the CLI's tqdm bar). ``cancelled`` is set by SIGTERM;
    long loops call :meth:`check_cancelled` at safe points.
    """

    def __init__(self, job_dir: JobDir | Path | str, *, listeners: Iterable[Callable[[dict], None]] = (),
                 status_interval: float = 0.5):
        self.dir = job_dir if isinstance(job_dir, JobDir) else JobDir(Path(job_dir))
        self.spec = self.dir.read_spec()
        self.cancelled = threading.Event()
        self.listeners = list(listeners)
        self.status_interval = status_interval
        self._last_status_write = 0.0
        self._progress = {"done": 0, "total": None, "unit": None}
        self._lock = threading.Lock()

    @property
    def output_dir(self) -> Path:
        self.dir.output_dir.mkdir(parents=True, exist_ok=True)
        return self.dir.output_dir

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


def run_job(job_dir: Path | str, fn: Callable[[JobContext], dict | None], *,
            listeners: Iterable[Callable[[dict], None]] = (), handle_sigterm: bool = True) -> dict:
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
        return jd.update_status(state="failed", message=str(e), exit_code=1, ended_at=now_iso())

    previous = {}
    if handle_sigterm and threading.current_thread() is threading.main_thread():
        def _on_signal(signum, frame):
            if ctx.cancelled.is_set() and signum == signal.SIGINT:
                raise KeyboardInterrupt
            ctx.cancelled.set()
            print(f"received {signal.Signals(signum).name}: stopping after the current step", file=sys.stderr, flush=True)
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, _on_signal)

    pid = os.getpid()
    jd.update_status(state="running", pid=pid, pid_start_time=process_start_time(pid),
                     started_at=now_iso(), ended_at=None, exit_code=None, message="")
    ctx.event("state", state="running")
    state, message, outputs, code = "failed", "", {}, 1
    try:
        outputs = fn(ctx) or {}
        if ctx.cancelled.is_set():
            state, message, code = "cancelled", "cancelled by request", 0
        else:
            state, message, code = "succeeded", outputs.pop("message", "") if isinstance(outputs, dict) else "", 0
    except JobCancelled as e:
        state, message, code = "cancelled", str(e) or "cancelled by request", 0
        outputs = getattr(e, "outputs", {}) or {}
    except JobError as e:
        state, message, code = "failed", str(e), 1
        print(f"ERROR: {e}", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        state, message, code = "cancelled", "interrupted by the user", 130
    except Exception as e:  # noqa: BLE001 - the job must record any failure
        traceback.print_exc()
        state, message, code = "failed", f"{type(e).__name__}: {e}", 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    fields = {"state": state, "message": message, "exit_code": code, "ended_at": now_iso(),
              "outputs": outputs if isinstance(outputs, dict) else {}}
    if ctx._progress["total"] is not None or ctx._progress["done"]:
        fields["progress"] = ctx._progress
    status = jd.update_status(**fields)
    ctx.event("state", state=state, message=message)
    return status


def job_main(fn: Callable[[JobContext], dict | None], argv: list[str] | None = None) -> None:
    """Entry point body for ``python -m jupyter_cvat_train.<kind> JOB_DIR``: runs the job
    and exits 0 when it succeeded or was cancelled, 1 when it failed, 2 on bad usage."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m jupyter_cvat_train.<kind> JOB_DIR", file=sys.stderr)
        sys.exit(2)
    status = run_job(argv[0], fn)
    sys.exit(0 if status.get("state") in ("succeeded", "cancelled") else 1)
