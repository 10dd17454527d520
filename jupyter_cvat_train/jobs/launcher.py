"""Starting, checking and signalling detached job processes.

A job process is ``python -m <kind module> JOB_DIR`` in its own session (so its own
process group, pgid == pid), with stdin from /dev/null and stdout + stderr appended to
``job.log``. It outlives the process that started it (a Jupyter server restart).

The launcher owns ``launch.json`` in the job folder: ``{pid, pid_start_time,
launched_at, command, gpu}``. With it a job can be found again (and told apart from a
later process that reuses its pid) even when the job died before writing status.json.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from .jobdir import JobDir, now_iso, process_start_time, write_json_atomic
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
    python = python or sys.executable
    cmd = [python, "-u", "-m", kind.module, str(job_dir.path.resolve())]
    child_env = dict(os.environ if env is None else env)
    child_env["PYTHONUNBUFFERED"] = "1"
    if gpu is not None:
        child_env["CUDA_VISIBLE_DEVICES"] = str(gpu)
    with open(job_dir.log_path, "ab") as log:
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


def read_launch(job_dir: JobDir) -> dict:
    """The parsed launch.json, or ``{}`` if the job was never launched."""
    try:
        data = json.loads((job_dir.path / LAUNCH_NAME).read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
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
    that reuses the pid. Zombies (exited, not yet reaped) count as dead."""
    if not pid:
        return False
    state = _proc_state(pid)
    if state is None or state in ("Z", "X"):
        return False
    if start_time is not None and process_start_time(pid) != start_time:
        return False
    return True


def signal_group(pid: int, start_time: float | None, sig: int = signal.SIGTERM) -> bool:
    """Send ``sig`` to the process group of job process ``pid`` (its own session, so
    pgid == pid), after checking it is still the same process. Returns True if sent."""
    if not process_alive(pid, start_time):
        return False
    try:
        os.killpg(pid, sig)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return False


def job_process(job_dir: JobDir) -> tuple[int | None, float | None]:
    """(pid, start time) of the job's process: from status.json once the process wrote
    it, else from launch.json."""
    status = job_dir.read_status()
    if status.get("pid"):
        return status.get("pid"), status.get("pid_start_time")
    launch_info = read_launch(job_dir)
    return launch_info.get("pid"), launch_info.get("pid_start_time")
