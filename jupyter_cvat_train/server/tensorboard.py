"""TensorBoard processes started by the server, one per job, on 127.0.0.1.

Each is ``python -m tensorboard.main --logdir <job>/output/tensorboard --host 127.0.0.1
--port P`` in its own process group, reached through jupyter-server-proxy at
``{base_url}proxy/P/``. Start is idempotent (one process per job, concurrent starts
share it); processes stop when their job is deleted and when the server stops. On
Linux each also gets the parent-death signal, so it ends even when the server is
killed without cleanup: no orphans.
"""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tornado.httpclient import AsyncHTTPClient, HTTPClientError

STARTUP_TIMEOUT = 90.0


class TensorBoardError(RuntimeError):
    """TensorBoard did not start; the message holds the end of its output."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Sets the parent-death signal (Linux prctl PR_SET_PDEATHSIG), then becomes TensorBoard:
# the signal survives exec, and no preexec_fn runs in the (threaded) server.
_LAUNCHER = ("import ctypes, os, signal, sys\n"
             "try:\n    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)\nexcept (OSError, AttributeError):\n    pass\n"
             "os.execv(sys.executable, [sys.executable, '-m', 'tensorboard.main', *sys.argv[1:]])")


@dataclass
class _TB:
    proc: subprocess.Popen
    port: int
    logdir: Path
    output: Path


class TensorBoards:
    """The TensorBoard processes of one server. ``python``: interpreter with tensorboard."""

    def __init__(self, python: str | None = None):
        self.python = python or sys.executable
        self._running: dict[str, _TB] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def port(self, job_id: str) -> int | None:
        """The port of the job's TensorBoard if it runs."""
        tb = self._running.get(job_id)
        return tb.port if tb is not None and tb.proc.poll() is None else None

    async def start(self, job_id: str, logdir: Path, timeout: float = STARTUP_TIMEOUT) -> int:
        """Start (or find) the TensorBoard of ``job_id`` over ``logdir`` (created if
        missing) and wait until it answers HTTP. Returns its port. Raises
        TensorBoardError if it exits or does not answer within ``timeout`` seconds.
        Must be called on the event loop thread (the parent-death signal is tied to
        the thread that starts the process)."""
        lock = self._locks.setdefault(job_id, asyncio.Lock())
        async with lock:
            port = self.port(job_id)
            if port is not None:
                return port
            self.stop(job_id)
            logdir.mkdir(parents=True, exist_ok=True)
            port = _free_port()
            output = logdir.parent.parent / "tensorboard.log"
            with open(output, "ab") as out:
                proc = subprocess.Popen(
                    [self.python, "-c", _LAUNCHER, "--logdir", str(logdir), "--host", "127.0.0.1",
                     "--port", str(port), "--reload_interval", "5"],
                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            self._running[job_id] = _TB(proc, port, logdir, output)
            try:
                await self._wait_ready(proc, port, timeout)
            except BaseException:
                self.stop(job_id)
                raise
            return port

    async def _wait_ready(self, proc: subprocess.Popen, port: int, timeout: float) -> None:
        client = AsyncHTTPClient()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise TensorBoardError(f"TensorBoard exited with code {proc.returncode}")
            try:
                await client.fetch(f"http://127.0.0.1:{port}/", request_timeout=2, raise_error=True)
                return
            except (HTTPClientError, OSError):
                await asyncio.sleep(0.2)
        raise TensorBoardError(f"TensorBoard did not answer on port {port} within {timeout:.0f} s")

    def stop(self, job_id: str, grace: float = 5.0) -> None:
        """Stop the job's TensorBoard (SIGTERM to its group, SIGKILL after ``grace``)."""
        tb = self._running.pop(job_id, None)
        if tb is None:
            return
        if tb.proc.poll() is None:
            try:
                os.killpg(tb.proc.pid, signal.SIGTERM)
                tb.proc.wait(grace)
            except subprocess.TimeoutExpired:
                os.killpg(tb.proc.pid, signal.SIGKILL)
                tb.proc.wait()
            except ProcessLookupError:
                pass
        tb.proc.poll()

    def stop_all(self) -> None:
        """Stop every TensorBoard this server started."""
        for job_id in list(self._running):
            self.stop(job_id)

    def pids(self) -> list[int]:
        """Pids of the running TensorBoard processes (for checks)."""
        return [tb.proc.pid for tb in self._running.values() if tb.proc.poll() is None]
