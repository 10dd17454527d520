"""The job folder contract (see docs/architecture.md): paths, records, and their checks.

A job folder::

    <runs_root>/<job-id>/
      job.json       the spec: {"kind": "train"|"annotate"|"sync"|"validate"|..., ...}
      status.json    owned by the job process, replaced atomically (temp file + rename):
                     {state, pid, pid_start_time, created_at, started_at, ended_at,
                      exit_code, message, progress: {done, total, unit}, outputs}
      events.jsonl   one JSON object per line, each with "type" and "time"
      job.log        the process's stdout + stderr (the backend redirects them)
      launch.json    the backend's handle of the job process (see jobs/backends/)
      output/        what the job produced

States: :class:`~.state.JobState`.

Everything in a job folder is untrusted input (any user of the Jupyter Contents API can
write the runs root): records are read with :func:`read_record` (regular files only, no
symlinks, no FIFOs, at most :data:`MAX_RECORD_BYTES`) and checked field by field
(:func:`clean_status`); a bad field is dropped, never raised.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import re
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...fileio import atomic_write
from .state import STATES, JobError, JobState

MAX_RECORD_BYTES = 1 << 20  # job.json, status.json, launch.json: larger ones are refused
MAX_MESSAGE = 4000  # characters of a job's message kept (longer ones are cut)
PID_MAX = 1 << 22  # the largest pid Linux hands out
_ISO_TIME = re.compile(
    r"\d{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01])"  # date, then an optional time
    r"([T ]([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?)?)?"
)


def now_iso() -> str:
    """The current UTC time as ISO 8601 with milliseconds and a ``Z`` suffix."""
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` (mode 0644) through
    :func:`jupyter_cvat_train.fileio.atomic_write`, flushed to disk before the rename:
    readers see the old or the new file, never a partial one, and a planted file or
    symlink is never written through.
    Raises OSError (e.g. when ``path`` is a directory)."""
    atomic_write(path, data, mode=0o644, fsync=True)


SPEC_HASH_ENV = "CVAT_TRAIN_SPEC_SHA256"


def spec_sha256(spec_bytes: bytes) -> str:
    """The SHA-256 (hex) of job.json's bytes. The scheduler passes the one it checked to
    the job process in ``$CVAT_TRAIN_SPEC_SHA256``; the process then refuses another spec."""
    return hashlib.sha256(spec_bytes).hexdigest()


def json_bytes(data: Any) -> bytes:
    """``data`` as the JSON bytes job records are written with."""
    return json.dumps(data, indent=1, default=str).encode("utf-8")


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` atomically (see :func:`write_bytes_atomic`)."""
    write_bytes_atomic(path, json_bytes(data))


class RecordError(ValueError):
    """A job record that cannot be read: not a regular file, a symlink, too large, not
    JSON, or not a JSON object. The message says which."""


def read_record(path: Path, limit: int = MAX_RECORD_BYTES) -> bytes:
    """The bytes of job record ``path``. Raises FileNotFoundError when it is missing and
    RecordError when it is a symlink, a directory, a FIFO or another non-regular file, or
    larger than ``limit`` bytes. Never blocks (a FIFO is refused, not opened for reading)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise RecordError(f"{Path(path).name} is a symbolic link; job records must be plain files") from None
        raise RecordError(f"{Path(path).name} cannot be opened: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            what = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
            raise RecordError(f"{Path(path).name} is {what}; job records must be plain files")
        if st.st_size > limit:
            raise RecordError(f"{Path(path).name} is larger than {limit} bytes")
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 16, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise RecordError(f"{Path(path).name} is larger than {limit} bytes")
        return b"".join(chunks)
    except OSError as e:
        raise RecordError(f"{Path(path).name} cannot be read: {e.strerror}") from None
    finally:
        os.close(fd)


def read_json_record(path: Path, limit: int = MAX_RECORD_BYTES) -> dict:
    """Job record ``path`` parsed as a JSON object. Raises FileNotFoundError when it is
    missing, RecordError otherwise (see :func:`read_record`)."""
    data = read_record(path, limit)
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError) as e:
        raise RecordError(f"{Path(path).name} is not valid JSON ({str(e)[:100]})") from None
    if not isinstance(obj, dict):
        raise RecordError(f"{Path(path).name} must hold a JSON object, not {type(obj).__name__}")
    return obj


# -- field checks: each returns the value when valid, else raises ValueError ----------
def valid_pid(value: Any) -> int:
    """``value`` if it is a process id a job can have (an int in 2..PID_MAX), else ValueError."""
    if isinstance(value, int) and not isinstance(value, bool) and 2 <= value <= PID_MAX:
        return value
    raise ValueError(f"expected a process id (a whole number from 2 to {PID_MAX})")


def valid_number(value: Any, minimum: float = 0.0) -> float | int:
    """``value`` if it is a finite number >= ``minimum`` (not a bool), else ValueError."""
    if (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= minimum
        and abs(value) < 1e18
    ):
        return value
    raise ValueError(f"expected a finite number >= {minimum:g}")


def valid_time(value: Any) -> str:
    """``value`` if it is an ISO 8601 timestamp string (as :func:`now_iso` writes), else ValueError."""
    if isinstance(value, str) and len(value) <= 40 and _ISO_TIME.fullmatch(value):
        return value
    raise ValueError("expected an ISO 8601 timestamp string")


def valid_text(value: Any, limit: int = MAX_MESSAGE) -> str:
    """``value`` if it is a string, cut to ``limit`` characters; else ValueError."""
    if not isinstance(value, str):
        raise ValueError("expected a string")
    return value if len(value) <= limit else value[: limit - 1] + "\u2026"


def _optional(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda v: None if v is None else check(v)


def _exit_code(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and -255 <= value <= 255:
        return value
    raise ValueError("expected an exit code (a whole number from -255 to 255)")


def valid_state(value: Any) -> JobState:
    """``value`` as a :class:`JobState` if it names one, else ValueError."""
    if isinstance(value, str) and value in STATES:
        return JobState(value)
    raise ValueError(f"expected one of {', '.join(STATES)}")


def _object(value: Any) -> dict:
    if isinstance(value, dict):
        return value
    raise ValueError("expected a JSON object")


def clean_progress(value: Any) -> dict:
    """``{done, total, unit}`` from a progress record: done a number >= 0 (0 when bad),
    total a number >= 0 or None, unit a short string or None."""
    value = value if isinstance(value, dict) else {}
    out = {"done": 0, "total": None, "unit": None}
    for key, check in (
        ("done", valid_number),
        ("total", _optional(valid_number)),
        ("unit", _optional(lambda v: valid_text(v, 40))),
    ):
        try:
            out[key] = check(value.get(key))
        except ValueError:
            pass
    return out


def _progress(value: Any) -> dict:
    value = _object(value)
    out = clean_progress(value)
    bad = [k for k in ("done", "total", "unit") if k in value and value[k] != out[k]]
    if bad:
        raise ValueError(f"bad {', '.join(bad)} (expected done and total numbers >= 0, unit a short string)")
    return out


STATUS_FIELDS: dict[str, Callable[[Any], Any]] = {
    "state": valid_state,
    "pid": _optional(valid_pid),
    "pid_start_time": _optional(valid_number),
    "created_at": _optional(valid_time),
    "started_at": _optional(valid_time),
    "ended_at": _optional(valid_time),
    "exit_code": _optional(_exit_code),
    "message": valid_text,
    "progress": _progress,
    "outputs": _object,
}


def clean_record(data: dict, fields: dict[str, Callable[[Any], Any]]) -> tuple[dict, list[str]]:
    """The fields of ``data`` that pass their check in ``fields`` (checked values), and
    one problem text per field dropped (unknown fields are dropped silently)."""
    out, problems = {}, []
    for key, check in fields.items():
        if key in data:
            try:
                out[key] = check(data[key])
            except ValueError as e:
                problems.append(f"{key}: {e}")
    return out, problems


def clean_status(data: dict) -> tuple[dict, list[str]]:
    """status.json's fields checked by type and range (:data:`STATUS_FIELDS`): the valid
    ones, and a problem text for each dropped field."""
    return clean_record(data, STATUS_FIELDS)


def process_start_time(pid: int) -> float | None:
    """Start time of process ``pid`` in clock ticks since boot (Linux ``/proc/PID/stat``
    field 22), or None if the process does not exist. With the pid it identifies a
    process even after the pid is reused. Read here rather than taken from psutil's
    ``create_time()``, which adds the boot time as wall-clock seconds: that float moves
    when the clock is stepped, the tick count never does, so records compare exactly.
    The one place the project parses /proc."""
    try:
        pid = valid_pid(pid)
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode(errors="replace")
    except (OSError, ValueError):
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

    def is_real_dir(self) -> bool:
        """True if the folder exists and is a directory itself, not a symlink to one."""
        try:
            return stat.S_ISDIR(os.lstat(self.path).st_mode)
        except OSError:
            return False

    def create(self, spec: dict, spec_bytes: bytes | None = None) -> JobDir:
        """Create the folder with ``job.json`` = spec (``spec_bytes`` when given, which
        must be :func:`json_bytes` of it) and a ``queued`` status.
        Raises FileExistsError if the folder already holds a job.json."""
        self.path.mkdir(parents=True, exist_ok=True)
        if os.path.lexists(self.spec_path):
            raise FileExistsError(f"{self.spec_path} already exists: choose a new job folder")
        write_bytes_atomic(self.spec_path, json_bytes(spec) if spec_bytes is None else spec_bytes)
        write_json_atomic(
            self.status_path,
            {"state": JobState.QUEUED, "created_at": now_iso(), "progress": {"done": 0, "total": None, "unit": None}},
        )
        return self

    def read_spec(self, expect_sha256: str | None = None) -> dict:
        """The parsed ``job.json``. Raises JobError naming the file when it is missing,
        not a plain file, too large or not a JSON object, or (``expect_sha256``) when its
        bytes are not the ones checked before the job started."""
        try:
            data = read_record(self.spec_path)
            if expect_sha256 is not None and spec_sha256(data) != expect_sha256:
                raise JobError(f"{self.spec_path} was changed after the job was checked and queued: not run")
            spec = json.loads(data)
        except FileNotFoundError:
            raise JobError(f"{self.spec_path} not found: a job folder needs a job.json spec") from None
        except RecordError as e:
            raise JobError(f"{self.spec_path.parent}: {e}") from None
        except (ValueError, RecursionError) as e:
            raise JobError(f"{self.spec_path} is not valid JSON: {str(e)[:100]}") from None
        if not isinstance(spec, dict):
            raise JobError(f"{self.spec_path} must hold a JSON object")
        if "kind" in spec and not isinstance(spec["kind"], str):
            raise JobError(f"{self.spec_path}: kind must be a string")
        return spec

    def load_status(self) -> tuple[dict, str | None]:
        """(checked status, problem): the status.json fields that pass their checks
        (:func:`clean_status`), and None, or a text naming what is wrong (the file is
        unreadable, or fields were dropped). A missing file is ``({}, None)``."""
        try:
            data = read_json_record(self.status_path)
        except FileNotFoundError:
            return {}, None
        except RecordError as e:
            return {}, str(e)
        status, problems = clean_status(data)
        return status, ("status.json: bad fields dropped (" + "; ".join(problems) + ")") if problems else None

    def read_status(self) -> dict:
        """The checked ``status.json`` (see :meth:`load_status`), ``{}`` when it is
        missing or unreadable."""
        return self.load_status()[0]

    def update_status(self, **fields: Any) -> dict:
        """Merge ``fields`` into status.json (atomically) and return the new status.
        Only the job process (or, for a dead process, the manager) calls this. Raises
        OSError when the file cannot be replaced (e.g. a directory in its place)."""
        status = self.read_status()
        status.update(fields)
        write_json_atomic(self.status_path, status)
        return status

    def append_event(self, event: dict) -> None:
        """Append one event (a JSON object) as one line of events.jsonl (never through a
        symlink: a planted one raises OSError)."""
        line = json.dumps(event, default=str, separators=(",", ":")) + "\n"
        fd = os.open(self.events_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        with open(fd, "a", encoding="utf-8") as f:
            f.write(line)

    def read_events(self, limit: int = 64 << 20) -> list[dict]:
        """All events so far (JSON objects with a string ``type``; other lines, and a
        partly written last line, are skipped). At most ``limit`` bytes are read."""
        out = []
        try:
            data = read_record(self.events_path, limit=limit)
        except (FileNotFoundError, RecordError):
            return out
        for line in data.splitlines():
            try:
                event = json.loads(line)
            except (ValueError, RecursionError):
                continue
            if isinstance(event, dict) and isinstance(event.get("type"), str):
                out.append(event)
        return out
