"""TensorBoard processes started by the server, one per job, on 127.0.0.1.

Each is ``python -m tensorboard.main --logdir <job>/output/tensorboard --host 127.0.0.1
--port P``, supervised with simpervisor (the supervisor jupyter-server-proxy uses) and
reached through jupyter-server-proxy at ``{base_url}proxy/P/``. Start is idempotent
(one process per job, concurrent starts share it); processes stop when their job is
deleted and when the server stops, without blocking the event loop. On Linux each also
gets the parent-death signal, so it ends even when the server is killed without
cleanup: no orphans.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from simpervisor import SupervisedProcess
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

STARTUP_TIMEOUT = 90.0


class TensorBoardError(RuntimeError):
    """TensorBoard did not start; the message says whether it exited or did not answer."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Sets the parent-death signal (Linux prctl PR_SET_PDEATHSIG), then becomes TensorBoard:
# the signal survives exec, and no preexec_fn runs in the (threaded) server.
_LAUNCHER = (
    "import ctypes, os, signal, sys\n"
    "try:\n    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)\nexcept (OSError, AttributeError):\n    pass\n"
    "os.execv(sys.executable, [sys.executable, '-m', 'tensorboard.main', *sys.argv[1:]])"
)


@dataclass
class _TB:
    proc: SupervisedProcess
    port: int


class TensorBoards:
    """The TensorBoard processes of one server. ``python``: interpreter with tensorboard."""

    def __init__(self, python: str | None = None):
        self.python = python or sys.executable
        self._running: dict[str, _TB] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def port(self, job_id: str) -> int | None:
        """The port of the job's TensorBoard if it runs."""
        tb = self._running.get(job_id)
        return tb.port if tb is not None and tb.proc.running else None

    async def start(self, job_id: str, logdir: Path, timeout: float = STARTUP_TIMEOUT) -> int:
        """Start (or find) the TensorBoard of ``job_id`` over ``logdir`` (created if
        missing) and wait until it answers HTTP. Returns its port. Raises
        TensorBoardError if it exits or does not answer within ``timeout`` seconds.
        Must be called on the event loop thread (the parent-death signal is tied to
        the thread that starts the process). Its output goes to
        ``<job>/tensorboard.log``."""
        lock = self._locks.setdefault(job_id, asyncio.Lock())
        async with lock:
            port = self.port(job_id)
            if port is not None:
                return port
            await self.stop(job_id)
            logdir.mkdir(parents=True, exist_ok=True)
            port = _free_port()
            exited = False

            async def ready(proc: SupervisedProcess) -> bool:
                nonlocal exited
                if not proc.running:  # simpervisor restarts a failed process; one failure is enough here
                    exited = True
                    return True  # ends simpervisor's wait; reported below
                try:
                    await AsyncHTTPClient().fetch(f"http://127.0.0.1:{port}/", request_timeout=2, raise_error=True)
                    return True
                except (HTTPClientError, OSError):
                    return False

            with open(logdir.parent.parent / "tensorboard.log", "ab") as out:
                proc = SupervisedProcess(
                    f"tensorboard-{job_id}",
                    self.python,
                    "-c",
                    _LAUNCHER,
                    "--logdir",
                    str(logdir),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--reload_interval",
                    "5",
                    ready_func=ready,
                    ready_timeout=timeout,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=out,
                    stderr=asyncio.subprocess.STDOUT,
                    start_new_session=True,
                )
                await proc.start()
            self._running[job_id] = _TB(proc, port)
            answered = await proc.ready()
            if exited or not answered:
                await self.stop(job_id)
                raise TensorBoardError(
                    "TensorBoard exited while starting (see tensorboard.log in the job folder)"
                    if exited
                    else f"TensorBoard did not answer on port {port} within {timeout:.0f} s"
                )
            return port

    async def stop(self, job_id: str, grace: float = 5.0) -> None:
        """Stop the job's TensorBoard: SIGTERM, SIGKILL after ``grace`` seconds; awaits
        its exit without blocking the event loop."""
        tb = self._running.pop(job_id, None)
        if tb is None or not tb.proc.running:
            return
        try:
            await asyncio.wait_for(tb.proc.terminate(), grace)
        except asyncio.TimeoutError:  # simpervisor refuses kill() after terminate()
            tb.proc.proc.send_signal(signal.SIGKILL)
            await tb.proc.proc.wait()
        except ProcessLookupError:
            pass

    async def stop_all(self) -> None:
        """Stop every TensorBoard this server started."""
        await asyncio.gather(*(self.stop(job_id) for job_id in list(self._running)))

    def pids(self) -> list[int]:
        """Pids of the running TensorBoard processes (for checks)."""
        return [tb.proc.pid for tb in self._running.values() if tb.proc.running]
