"""The local backend: a job process is a detached process group on this machine.

A job process is ``python -u -m jupyter_cvat_train.jobs.run JOB_DIR`` in its own session
(so its own process group, pgid == pid), with stdin from /dev/null and stdout + stderr
appended to ``job.log``. It outlives the process that started it (a Jupyter server
restart).

Its handle (launch.json): ``{backend: "local", pid, pid_start_time, launched_at,
command, gpu, launcher_pid}``. With it a job can be found again (and told apart from a
later process that reuses its pid) even when the job died before writing status.json.

Signalling trusts no file: launch.json and status.json lie in the runs root, which any
Contents API user can write. A process is signalled only when it is alive with the
recorded start time, leads its own session and process group, is not pid 1 nor our own
process or group, and its command line ends with ``-m <module> <this job folder>``
(:func:`is_job_process`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import psutil

from ..runtime import JobDir, clean_record, now_iso, process_start_time, valid_number, valid_pid, valid_text, valid_time
from . import JobBackend, LaunchRequest, Poll, read_handle

#: the module every job process runs (:mod:`jupyter_cvat_train.jobs.run`)
RUN_MODULE = "jupyter_cvat_train.jobs.run"


def job_command(job_dir: JobDir, python: str | None = None) -> list[str]:
    """The command line of the job process of ``job_dir``: ``[python, "-u", "-m",
    RUN_MODULE, <absolute job folder>]``."""
    return [python or sys.executable, "-u", "-m", RUN_MODULE, str(job_dir.path.resolve())]


def _command(value) -> list:
    if isinstance(value, list) and len(value) <= 64 and all(isinstance(v, str) and len(v) <= 4096 for v in value):
        return value
    raise ValueError("expected a list of strings")


def _gpu(value):
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1024):
        return value
    return valid_text(value, 64)


HANDLE_FIELDS = {
    "pid": valid_pid,
    "pid_start_time": valid_number,
    "launched_at": valid_time,
    "command": _command,
    "gpu": _gpu,
    "launcher_pid": valid_pid,
}


def process_alive(pid: int | None, start_time: float | None) -> bool:
    """True if process ``pid`` runs and (when ``start_time`` is known) started at
    ``start_time`` clock ticks after boot, i.e. it is the same process, not a later one
    that reuses the pid. Zombies (exited, not yet reaped) count as dead; so does a
    ``pid`` that is not a valid process id."""
    try:
        pid = valid_pid(pid)
        if psutil.Process(pid).status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
            return False
    except (ValueError, psutil.Error):
        return False
    return start_time is None or process_start_time(pid) == start_time


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
    <module> <this job folder>``, as :func:`job_command` makes it (any module: a job
    started by the kind's own ``python -m jupyter_cvat_train.<kind>`` still counts)."""
    if not _signallable(pid, start_time):
        return False
    try:
        cmdline = psutil.Process(pid).cmdline()
    except psutil.Error:  # gone, access denied: not a process we may signal
        return False
    return len(cmdline) >= 4 and cmdline[-1] == str(job_dir.path.resolve()) and cmdline[-3] == "-m"


def read_launch(job_dir: JobDir) -> dict:
    """The checked local handle of ``job_dir`` (launch.json; fields of the wrong type or
    range dropped), or ``{}`` if the job was never launched, the file is unreadable, or
    it names another backend."""
    return read_handle(job_dir, {LocalBackend.name: LocalBackend()})


def job_process(job_dir: JobDir) -> tuple[int | None, float | None]:
    """(pid, start time) of the job's process, checked by type and range: from
    status.json once the process wrote it, else from launch.json. For watching only:
    signal through :meth:`LocalBackend.cancel`."""
    status = job_dir.read_status()
    if status.get("pid"):
        return status.get("pid"), status.get("pid_start_time")
    launch_info = read_launch(job_dir)
    return launch_info.get("pid"), launch_info.get("pid_start_time")


class LocalBackend(JobBackend):
    """Job processes on this machine, each leading its own session.

    python: the interpreter of job processes (default: this one); niceness: added to
    their nice value (Linux: lower CPU priority), so a CPU-bound job leaves the Jupyter
    server responsive. Keeps the Popen of each process it started, to reap it and know
    its exit code. Thread-safe for distinct handles."""

    name = "local"

    def __init__(self, *, python: str | None = None, niceness: int = 0):
        self.python = python
        self.niceness = niceness
        self._children: dict[int, subprocess.Popen] = {}
        self._verified: set[tuple] = set()  # (folder, pid, start time) of processes verified as that folder's job

    def launch(self, request: LaunchRequest) -> dict:
        """Start ``python -u -m jupyter_cvat_train.jobs.run JOB_DIR`` detached (own
        session), ``CUDA_VISIBLE_DEVICES`` = the request's GPU when given. Raises OSError
        if the interpreter cannot be started."""
        job_dir = request.job_dir
        cmd = job_command(job_dir, self.python)
        env = dict(request.env)
        env["PYTHONUNBUFFERED"] = "1"
        if request.gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = str(request.gpu)
        # never through a symlink planted in place of job.log
        log_fd = os.open(job_dir.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        with open(log_fd, "ab") as log:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=job_dir.path,
                env=env,
                start_new_session=True,
                close_fds=True,
            )
        if self.niceness > 0:  # set from here, not in a preexec_fn (unsafe in a threaded server)
            try:
                os.setpriority(os.PRIO_PROCESS, proc.pid, os.getpriority(os.PRIO_PROCESS, 0) + self.niceness)
            except OSError:
                pass
        self._children[proc.pid] = proc
        return {
            "backend": self.name,
            "pid": proc.pid,
            "pid_start_time": process_start_time(proc.pid),
            "launched_at": now_iso(),
            "command": cmd,
            "gpu": request.gpu,
            "launcher_pid": os.getpid(),
        }

    def check_handle(self, data: dict) -> dict:
        return clean_record(data, HANDLE_FIELDS)[0]

    def _child(self, handle: dict) -> subprocess.Popen | None:
        proc = self._children.get(handle.get("pid"))
        if proc is None:
            return None
        start = handle.get("pid_start_time")
        if start is not None and proc.poll() is None and process_start_time(proc.pid) not in (None, start):
            return None  # the handle names our child's pid, but another start time
        return proc

    def poll(self, job_dir: JobDir, handle: dict) -> Poll:
        """Our child: its ``poll()`` (exit code when it ended). Any other process: alive
        when a process with the handle's pid *and* start time runs (no start time: dead),
        verified by :func:`is_job_process`."""
        proc = self._child(handle)
        if proc is not None:
            code = proc.poll()
            return Poll(alive=code is None, verified=True, exit_code=code)
        pid, start = handle.get("pid"), handle.get("pid_start_time")
        if start is None or not process_alive(pid, start):
            return Poll(alive=False)
        key = (str(job_dir.path), pid, start)
        if key not in self._verified and is_job_process(job_dir, pid, start):
            self._verified.add(key)  # only a yes is kept: a process between fork and exec is not one yet
        return Poll(alive=True, verified=key in self._verified)

    def cancel(self, job_dir: JobDir, handle: dict, grace: float) -> bool:
        """SIGTERM (``grace > 0``) or SIGKILL to the process group of the handle's
        process: our live child, or a process :func:`is_job_process` verifies as the job
        process of ``job_dir``. True if sent."""
        sig = signal.SIGTERM if grace > 0 else signal.SIGKILL
        proc = self._child(handle)
        if proc is not None:
            return proc.poll() is None and signal_group(proc.pid, process_start_time(proc.pid), sig)
        pid, start = handle.get("pid"), handle.get("pid_start_time")
        if not is_job_process(job_dir, pid, start):
            return False
        try:
            os.killpg(pid, sig)
            return True
        except (ProcessLookupError, PermissionError):
            return False

    def candidates(self, job_dir: JobDir, handles: list[dict]) -> list[dict]:
        """The handles of ``handles`` that name a process, then the pid and start time the
        job process wrote in status.json; one per (pid, start time)."""
        status = job_dir.read_status()
        out, seen = [], set()
        for h in [*handles, {"pid": status.get("pid"), "pid_start_time": status.get("pid_start_time")}]:
            key = (h.get("pid"), h.get("pid_start_time"))
            if key[0] and key not in seen:
                seen.add(key)
                out.append({"backend": self.name, **h})
        return out

    def forget(self, handle: dict) -> None:
        proc = self._children.get(handle.get("pid"))
        if proc is not None and proc.poll() is not None:
            self._children.pop(proc.pid, None)

    def close(self) -> None:
        """Stop tracking child processes (they keep running: they are detached)."""
        self._children.clear()
