"""The server side of jobs: one :class:`JobService` per server, shared by the handlers.

It owns the :class:`~jupyter_cvat_train.jobs.manager.JobManager` of the runs root, a
thread pool for blocking work (validation, file and sqlite access, launching), a
watcher thread that polls the jobs (:meth:`JobManager.poll`, which also starts queued
jobs and enforces cancel grace periods), and the TensorBoard processes.
"""
from __future__ import annotations

import asyncio
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, Callable

from ..jobs.manager import JobManager
from .tensorboard import TensorBoards


class JobService:
    """root_dir: the server's root folder (client paths resolve inside it);
    manager: the jobs of the runs root; poll_interval: seconds between watcher polls."""

    def __init__(self, root_dir: Path | str, manager: JobManager, *, poll_interval: float = 0.2,
                 tensorboard_enabled: bool = True, workers: int = 4, log=None):
        self.root_dir = Path(os.path.realpath(root_dir))
        self.manager = manager
        self.poll_interval = poll_interval
        self.tensorboard_enabled = tensorboard_enabled
        self.tensorboards = TensorBoards()
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cvat-train")
        self.log = log
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- life cycle ---------------------------------------------------------------------
    def start(self) -> None:
        """Reconcile the runs root and start the watcher thread."""
        report = self.manager.reconcile()
        if self.log:
            self.log.info("cvat-train: jobs in %s reconciled: %s", self.manager.runs_root, report)
        self._thread = threading.Thread(target=self._watch, name="cvat-train-jobs", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the watcher and every TensorBoard; job processes keep running."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.tensorboards.stop_all()
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.manager.close()

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                self.manager.poll()
            except Exception:  # noqa: BLE001 - the watcher must survive a bad job folder
                if self.log:
                    self.log.exception("cvat-train: polling jobs failed")
            self._stop.wait(self.poll_interval)

    # -- helpers for handlers -----------------------------------------------------------
    async def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run blocking ``fn(*args, **kwargs)`` in the thread pool."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, partial(fn, *args, **kwargs))

    def public(self, job: dict) -> dict:
        """The job dict for clients: ``dir`` relative to root_dir (posix) when inside it."""
        d = Path(job["dir"])
        try:
            rel = d.relative_to(self.root_dir).as_posix()
        except ValueError:
            rel = str(d)
        return {**job, "dir": rel}
