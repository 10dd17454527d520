"""The server side of jobs: one :class:`JobService` per server, shared by the handlers.

It owns the :class:`~jupyter_cvat_train.jobs.manager.JobManager` of the runs root, a
thread pool for short blocking work (file and sqlite access, log reads, launching), a
separate bounded pool for heavy work (dataset validation: extraction, hashing, parsing),
a watcher thread that polls the jobs (:meth:`JobManager.poll`, which also enforces cancel
grace periods and, while this server holds the runs root's scheduler lease, starts queued
jobs: see :mod:`jupyter_cvat_train.jobs.scheduler`), and the TensorBoard processes.

Why a pool of its own rather than a job process per validation: a validation answers the
request that asked for it (the report is the response of ``POST datasets/validate`` and
of a refused ``POST jobs``), usually in well under a second on a warm extraction cache,
where a process would add its start and imports to every call. What must not happen is
that validations hold the threads log and stream requests need: so they get their own
``validation_workers`` threads, and at most ``validation_queue`` more wait; beyond that a
request is answered 503 with ``Retry-After`` instead of piling up.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

from ..jobs.manager import JobManager, JobNotFound
from ..jobs.registry import path_fields
from ..jobs.runtime import JobError
from .tensorboard import TensorBoards

#: A job.json longer than this (as JSON text) is not sent to clients: ``spec`` is null.
MAX_SHOWN_SPEC_CHARS = 64 * 1024


#: Seconds the device probe (a Python that imports torch) may take.
DEVICE_PROBE_TIMEOUT = 120


async def _probe_devices() -> dict:
    """Run ``python -m jupyter_cvat_train.models.device``; its JSON, or CPU only with
    ``failed`` set and the reason in ``note``."""
    cpu_only = {"devices": [{"id": "auto", "name": "auto"}, {"id": "cpu", "name": "CPU"}], "gpus": 0, "torch": None}
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "jupyter_cvat_train.models.device",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as e:
        return {**cpu_only, "failed": True, "note": f"the device probe could not start ({e.strerror})"}
    try:
        out, err = await asyncio.wait_for(proc.communicate(), DEVICE_PROBE_TIMEOUT)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        return {**cpu_only, "failed": True, "note": f"the device probe took over {DEVICE_PROBE_TIMEOUT} s"}
    try:
        return json.loads(out.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        tail = err.decode(errors="replace").strip().splitlines()[-1:] or [f"exit status {proc.returncode}"]
        return {**cpu_only, "failed": True, "note": f"the device probe failed: {tail[0][:200]}"}


class PoolFull(RuntimeError):
    """The bounded pool has no free place; ``retry_after``: seconds to suggest to the client."""

    def __init__(self, message: str, retry_after: int = 5):
        super().__init__(message)
        self.retry_after = retry_after


class BoundedPool:
    """A thread pool that takes at most ``workers`` running plus ``queue`` waiting calls.

    :meth:`run` raises :class:`PoolFull` at once when that many are already in it (a call
    leaves the pool when its function returns, even if its client has gone)."""

    def __init__(self, workers: int, queue: int, name: str):
        self.workers, self.queue = max(1, workers), max(0, queue)
        self.executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix=name)
        self._lock = threading.Lock()
        self.in_flight = 0  # calls running or waiting

    async def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` in the pool; PoolFull when it is full."""
        with self._lock:
            if self.in_flight >= self.workers + self.queue:
                raise PoolFull(f"the server is busy with {self.in_flight} checks or validations; try again shortly")
            self.in_flight += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self.executor, partial(fn, *args, **kwargs))
        finally:
            with self._lock:
                self.in_flight -= 1

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


class JobService:
    """root_dir: the server's root folder (client paths resolve inside it);
    manager: the jobs of the runs root; poll_interval: seconds between watcher polls;
    workers: threads for short blocking work; validation_workers / validation_queue:
    threads for dataset validation and how many more validations may wait for one."""

    def __init__(
        self,
        root_dir: Path | str,
        manager: JobManager,
        *,
        poll_interval: float = 0.2,
        tensorboard_enabled: bool = True,
        workers: int = 4,
        validation_workers: int = 2,
        validation_queue: int = 4,
        log=None,
    ):
        self.root_dir = Path(os.path.realpath(root_dir))
        self.manager = manager
        self.poll_interval = poll_interval
        self.tensorboard_enabled = tensorboard_enabled
        self.tensorboards = TensorBoards()
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cvat-train")
        self.validation_pool = BoundedPool(validation_workers, validation_queue, "cvat-train-validate")
        self.log = log
        self._specs: dict[str, dict | None] = {}  # job id -> shown spec (job.json never changes)
        self._devices: asyncio.Future | None = None  # the device probe's answer, once
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

    async def stop(self) -> None:
        """Stop the watcher and every TensorBoard; job processes keep running. Waits
        without blocking the event loop."""
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 5)
        await self.tensorboards.stop_all()
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.validation_pool.shutdown()
        self.manager.close()

    def _watch(self) -> None:
        # the specs of the jobs already there, read once up front: the page's first GET
        # jobs then builds its reply on the event loop instead of reading every job.json
        # in the pool (200 jobs: 66 ms cold, 2 ms warm, on the 2-core development machine)
        for job in self.manager.snapshot():
            if self._stop.is_set():
                return
            self.spec_of(job["id"])
        scheduling = None
        while not self._stop.is_set():
            try:
                self.manager.poll()  # refreshes the jobs; starts queued ones while we hold the lease
                if self.manager.is_scheduler != scheduling:
                    scheduling = self.manager.is_scheduler
                    self._log_scheduler(scheduling)
            except Exception:  # noqa: BLE001 - the watcher must survive a bad job folder
                if self.log:
                    self.log.exception("cvat-train: polling jobs failed")
            self._stop.wait(self.poll_interval)

    def _log_scheduler(self, scheduling: bool) -> None:
        if not self.log:
            return
        if scheduling:
            self.log.info("cvat-train: this server schedules the jobs of %s", self.manager.runs_root)
        else:
            holder = self.manager.lease.holder() or {}
            self.log.warning(
                "cvat-train: the jobs of %s are scheduled by %s; this server starts none until that process ends",
                self.manager.runs_root,
                holder.get("owner") or "another process",
            )

    # -- helpers for handlers -----------------------------------------------------------
    async def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run short blocking ``fn(*args, **kwargs)`` in the thread pool."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, partial(fn, *args, **kwargs))

    async def run_heavy(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run heavy ``fn`` (a dataset validation, a spec's dataset check, an image
        listing, a storage connection check) in the validation pool. Raises PoolFull."""
        return await self.validation_pool.run(fn, *args, **kwargs)

    async def devices(self) -> dict:
        """:func:`~..models.device.probe_devices` of this machine, probed once per server
        in a subprocess (it imports torch, which the server never does) and then cached;
        concurrent callers share the one probe. A probe that fails or takes over
        :data:`DEVICE_PROBE_TIMEOUT` seconds answers CPU only, with the reason in ``note``,
        and is tried again on the next call."""
        if self._devices is None or (self._devices.done() and self._devices.result().get("failed")):
            self._devices = asyncio.ensure_future(_probe_devices())
        return await asyncio.shield(self._devices)

    def shown_path(self, path: str) -> str:
        """``path`` relative to root_dir (posix) when inside it, else as given."""
        try:
            return Path(path).relative_to(self.root_dir).as_posix()
        except ValueError:
            return str(path)

    def spec_of(self, job_id: str) -> dict | None:
        """The job's spec (job.json) for clients, read once and cached: path fields (those
        of every registered kind, :func:`~..jobs.registry.path_fields`) relative to root_dir; None when job.json is missing,
        unreadable or longer than :data:`MAX_SHOWN_SPEC_CHARS`. Reads a file: call it
        from a worker thread (:meth:`public_jobs`)."""
        if job_id in self._specs:
            return self._specs[job_id]
        try:
            spec = self.manager.job_dir(job_id).read_spec()
        except (JobError, JobNotFound, OSError):
            spec = None
        if spec is not None:
            fields = path_fields()
            spec = {k: self.shown_path(v) if k in fields and isinstance(v, str) else v for k, v in spec.items()}
            if len(json.dumps(spec, default=str)) > MAX_SHOWN_SPEC_CHARS:
                spec = None
        self._specs[job_id] = spec
        return spec

    def forget_spec(self, job_id: str) -> None:
        """Drop a deleted job's cached spec."""
        self._specs.pop(job_id, None)

    def public(self, job: dict) -> dict:
        """The job dict for clients: ``dir`` relative to root_dir (posix) when inside it
        (and an annotate job's output paths, :meth:`shown_annotate_outputs`), and ``spec`` (:meth:`spec_of`; may read job.json: call from a worker thread)."""
        out = {**job, "dir": self.shown_path(job["dir"]), "spec": self.spec_of(job["id"])}
        if job.get("kind") == "annotate" and isinstance(job.get("outputs"), dict):
            out["outputs"] = self.shown_annotate_outputs(job["outputs"])
        return out

    def shown_annotate_outputs(self, outputs: dict) -> dict:
        """An annotate job's outputs (its summary) with the paths it names (``output``,
        ``summary_path``, each of ``previews``) relative to root_dir when inside it."""
        shown = dict(outputs)
        for key in ("output", "summary_path"):
            if isinstance(shown.get(key), str):
                shown[key] = self.shown_path(shown[key])
        if isinstance(shown.get("previews"), list):
            shown["previews"] = [self.shown_path(p) if isinstance(p, str) else p for p in shown["previews"]]
        return shown

    async def public_jobs(self, jobs: list[dict]) -> list[dict]:
        """:meth:`public` of each job: on the event loop when every spec is cached (the
        usual case: a thread hop doubled GET jobs' median latency under load,
        benchmarks/bench_server.py), else in the thread pool, so job.json reads stay off
        the event loop."""
        if all(j["id"] in self._specs for j in jobs):
            return [self.public(j) for j in jobs]
        return await self.run(lambda: [self.public(j) for j in jobs])
