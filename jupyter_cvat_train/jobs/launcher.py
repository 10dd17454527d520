"""Starting, checking and signalling detached job processes.

A job process is ``python -m <kind module> JOB_DIR`` in its own session (so its own
process group, pgid == pid), with stdin from /dev/null and stdout + stderr appended to
``job.log``. It outlives the process that started it (a Jupyter server restart).

The launcher owns ``launch.json`` in the job folder: ``{pid, pid_start_time,
launched_at, command, gpu}``. With it a job can be found again (and told apart from a
later process that reuses its pid) even when the job died before writing status.json.

Signalling trusts no file: launch.json and status.json lie in the runs root, which any
Contents API user can write. :func:`signal_job` signals only a live process whose start
time matches the record and whose command line is the one :func:`job_command` gives for
*this* job folder, leading its own session, and never pid 1 or our own group.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from .jobdir import (JobDir, RecordError, clean_record, now_iso, process_start_time, read_json_record, valid_number,
                     valid_pid, valid_text, valid_time, write_json_atomic)
from .kinds import JobKind

LAUNCH_NAME = "launch.json"


def launch(job_dir: JobDir, kind: JobKind, *, python: str | None = None, gpu: int | str | None = None,
           env: dict[str, str] | None = None, niceness: int = 0) -> subprocess.Popen:
    """Start the job process of ``job_dir`` for ``kind`` and record it in launch.json.

    ``gpu``: when not None, the process sees only that GPU (``CUDA_VISIBLE_DEVICES``).
    ``niceness``: added to the process's nice value (Linux: lower CPU priority), so a
    CPU-bound job leaves the Jupyter server responsive.
    Returns the Popen (the caller reaps it with ``poll()``). Raises OSError if the
    interpreter cannot be started.
    """
    cmd = job_command(kind, job_dir, python)
    child_env = dict(os.environ if env is None else env)
    child_env["PYTHONUNBUFFERED"] = "1"
    if gpu is not None:
        child_env["CUDA_VISIBLE_DEVICES"] = str(gpu)
    # never through a symlink planted in place of job.log
    log_fd = os.open(job_dir.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    with open(log_fd, "ab") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                cwd=job_dir.path, env=child_env, start_new_session=True, close_fds=True)
    if niceness > 0:  # set from here, not in a preexec_fn (unsafe in a threaded server)
        try:
            os.setpriority(os.PRIO_PROCESS, proc.pid, os.getpriority(os.PRIO_PROCESS, 0) + niceness)
        except OSError:
            pass
    write_json_atomic(job_dir.path / LAUNCH_NAME, {
        "pid": proc.pid, "pid_start_time": process_start_time(proc.pid), "launched_at": now_iso(),
        "command": cmd, "gpu": gpu})
    return proc


def job_command(kind: JobKind, job_dir: JobDir, python: str | None = None) -> list[str]:
    """The command line of the job process of ``job_dir``: ``[python, "-u", "-m",
    kind.module, <absolute job folder>]``."""
    return [python or sys.executable, "-u", "-m", kind.module, str(job_dir.path.resolve())]


def _pid_start(value) -> float:
    return valid_number(value)


def _command(value) -> list:
    if isinstance(value, list) and len(value) <= 64 and all(isinstance(v, str) and len(v) <= 4096 for v in value):
        return value
    raise ValueError("expected a list of strings")


def _gpu(value):
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1024):
        return value
    return valid_text(value, 64)


LAUNCH_FIELDS = {"pid": valid_pid, "pid_start_time": _pid_start, "launched_at": valid_time, "command": _command,
                 "gpu": _gpu}


def read_launch(job_dir: JobDir) -> dict:
    """The checked launch.json (fields of the wrong type or range dropped), or ``{}``
    if the job was never launched or the file is unreadable."""
    try:
        return clean_record(read_json_record(job_dir.path / LAUNCH_NAME), LAUNCH_FIELDS)[0]
    except (FileNotFoundError, RecordError):
        return {}


def _proc_state(pid: int) -> str | None:
    """The one-letter state of ``pid`` from /proc/PID/stat (``Z`` = zombie), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode(errors="replace")
    except OSError:
        return None
    return data[data.rindex(")") + 2:].split()[0]


def process_alive(pid: int | None, start_time: float | None) -> bool:
    """True if process ``pid`` runs and (when ``start_time`` is known) started at
    ``start_time`` clock ticks after boot, i.e. it is the same process, not a later one
    that reuses the pid. Zombies (exited, not yet reaped) count as dead; so does a
    ``pid`` that is not a valid process id."""
    try:
        pid = valid_pid(pid)
    except ValueError:
        return False
    state = _proc_state(pid)
    if state is None or state in ("Z", "X"):
        return False
    if start_time is not None and process_start_time(pid) != start_time:
        return False
    return True


def _signallable(pid, start_time) -> bool:
    """A process we may signal as a group: a valid pid other than ours, alive with the
    recorded start time (required), leading its own session and process group."""
    try:
        pid = valid_pid(pid)
        valid_number(start_time)
    except ValueError:
        return False
    if pid in (os.getpid(), os.getpgrp()) or not process_alive(pid, start_time):
        return False
    try:
        return os.getpgid(pid) == pid and os.getsid(pid) == pid
    except OSError:
        return False


def signal_group(pid: int, start_time: float | None, sig: int = signal.SIGTERM) -> bool:
    """Send ``sig`` to the process group of process ``pid`` (a job process leads its own
    session, so pgid == pid), after checking it is still the same process (``start_time``
    is required). Refuses (returns False) for an invalid pid, pid 1, our own process or
    group, or a process that does not lead its own session. Returns True if sent."""
    if not _signallable(pid, start_time):
        return False
    try:
        os.killpg(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def is_job_process(job_dir: JobDir, pid, start_time) -> bool:
    """True if ``pid`` (started at ``start_time``) is the job process of ``job_dir``: it
    passes the checks of :func:`signal_group` and its command line ends with ``-m
    <module> <this job folder>``, as :func:`job_command` makes it (any kind's module: a
    kind registered only in another process still counts)."""
    if not _signallable(pid, start_time):
        return False
    try:
        import psutil

        cmdline = psutil.Process(pid).cmdline()
    except Exception:  # noqa: BLE001 - gone, access denied: not a process we may signal
        return False
    return len(cmdline) >= 4 and cmdline[-1] == str(job_dir.path.resolve()) and cmdline[-3] == "-m"


def signal_job(job_dir: JobDir, sig: int = signal.SIGTERM, also: tuple = ()) -> bool:
    """Send ``sig`` to the process group of the job process of ``job_dir``. Candidates:
    the launch record (launch.json: pid and start time), then status.json's, then the
    (pid, start time) pairs in ``also``; the first one that :func:`is_job_process`
    verifies is signalled. Returns True if sent; False (nothing signalled) when no
    candidate is this job's live process."""
    info, status = read_launch(job_dir), job_dir.read_status()
    candidates = [(info.get("pid"), info.get("pid_start_time")), (status.get("pid"), status.get("pid_start_time")),
                  *also]
    for pid, start_time in dict.fromkeys(candidates):
        if is_job_process(job_dir, pid, start_time):
            try:
                os.killpg(pid, sig)
                return True
            except (ProcessLookupError, PermissionError):
                return False
    return False


def job_process(job_dir: JobDir) -> tuple[int | None, float | None]:
    """(pid, start time) of the job's process, checked by type and range: from
    status.json once the process wrote it, else from launch.json. For watching only:
    signal with :func:`signal_job`."""
    status = job_dir.read_status()
    if status.get("pid"):
        return status.get("pid"), status.get("pid_start_time")
    launch_info = read_launch(job_dir)
    return launch_info.get("pid"), launch_info.get("pid_start_time")
