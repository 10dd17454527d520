"""Where job processes run: the :class:`JobBackend` interface and the backends.

A backend starts the job process of a job folder (:meth:`JobBackend.launch`), tells
whether it still runs (:meth:`JobBackend.poll`) and stops it (:meth:`JobBackend.cancel`).
What it needs to find the process again is its *handle*: a JSON object that the manager
persists in the job folder as ``launch.json`` (:func:`write_handle`), with
``"backend": <name>``. The manager and reconciliation go through this interface only.

Handles are read back from the runs root, which any Contents API user can write: a
backend checks a handle field by field (:meth:`JobBackend.check_handle`) and never acts
on one without verifying that it names the job process *of this job folder*.

Backends: ``local`` (:class:`.local.LocalBackend`: a detached process group on this
machine) and ``ray`` (:class:`.ray.RayBackend`: a Ray job on a cluster, over its
dashboard's REST API). :data:`BACKEND_NAMES` lists them.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..runtime import JobDir, RecordError, json_bytes, read_json_record, write_bytes_atomic

if TYPE_CHECKING:
    from ..registry import JobKind

HANDLE_NAME = "launch.json"
DEFAULT_BACKEND = "local"
#: the backends a job may name (``"backend"`` in its spec)
BACKEND_NAMES = ("local", "ray")


@dataclass(frozen=True)
class LaunchRequest:
    """What a backend needs to start a job: its folder, its kind, the environment of the
    job process (the spec's hash and the run target already in it) and, for an
    accelerator job, the GPU id it may use (None: no GPU given)."""

    job_dir: JobDir
    kind: JobKind
    env: dict[str, str] = field(default_factory=dict)
    gpu: str | None = None


@dataclass(frozen=True)
class Poll:
    """What :meth:`JobBackend.poll` saw. alive: the process named by the handle runs;
    verified: it is this job folder's job process (only a verified process is ever
    signalled or counted in the queue); exit_code: known when the backend saw it end
    (its own child), else None; note: for an unverified process, why the backend cannot
    tell for sure (e.g. "Ray cluster unreachable since ..."): the job is then shown
    running with this message, neither settled nor signalled; for a verified one, what
    its own process cannot say yet (waiting in a cluster's queue): shown as its message."""

    alive: bool
    verified: bool = False
    exit_code: int | None = None
    note: str = ""


class JobBackend(ABC):
    """One place job processes run. Methods never raise for a bad or stale handle:
    they report it dead (:meth:`poll`) or refuse (:meth:`cancel` returns False)."""

    #: the value of ``"backend"`` in the handles it makes
    name: str = ""
    #: whether its jobs run on this machine: then they queue for its limits and GPUs
    #: (:mod:`..queue`); a cluster's backend (False) is started at once and the cluster
    #: keeps a job waiting until it has the CPUs and GPUs the job asks for
    uses_this_machine: bool = True

    @abstractmethod
    def launch(self, request: LaunchRequest) -> dict:
        """Start the job process of ``request.job_dir`` (stdout + stderr to its job.log)
        and return its handle (a JSON object holding ``"backend": self.name``). Raises
        OSError when it cannot start."""

    @abstractmethod
    def poll(self, job_dir: JobDir, handle: dict) -> Poll:
        """Whether the process of ``handle`` runs, and whether it is verifiably the job
        process of ``job_dir`` (the handle is untrusted: it came from the runs root)."""

    @abstractmethod
    def cancel(self, job_dir: JobDir, handle: dict, grace: float) -> bool:
        """Stop the job process of ``handle``, if it is verifiably ``job_dir``'s: with
        ``grace > 0`` ask it to stop (it has ``grace`` seconds to save its work; the
        manager calls again with ``grace=0`` once they have passed); with ``grace <= 0``
        stop it by force now. Returns True if the request was delivered."""

    @abstractmethod
    def check_handle(self, data: dict) -> dict:
        """The fields of a stored handle that pass their checks (others dropped)."""

    def candidates(self, job_dir: JobDir, handles: list[dict]) -> list[dict]:
        """The distinct handles worth polling for ``job_dir``'s process, in order: the
        non-empty ones of ``handles`` (checked already), then any the backend finds in
        the job folder itself."""
        out: list[dict] = []
        for h in handles:
            if h and h not in out:
                out.append(h)
        return out

    def forget(self, handle: dict) -> None:  # noqa: B027 - an optional hook: nothing to drop by default
        """Drop what this process keeps about ``handle`` (its job is settled)."""


def read_handle(job_dir: JobDir, backends: dict[str, JobBackend]) -> dict:
    """The checked handle in ``job_dir``'s launch.json (``"backend"`` defaults to
    ``local``, the only backend of older records), or ``{}`` when there is none, it is
    unreadable, or it names a backend not in ``backends``."""
    try:
        data = read_json_record(job_dir.path / HANDLE_NAME)
    except (FileNotFoundError, RecordError):
        return {}
    backend = backends.get(data.get("backend", DEFAULT_BACKEND)) if isinstance(data.get("backend", ""), str) else None
    if backend is None:
        return {}
    return {**backend.check_handle(data), "backend": backend.name}


def write_handle(job_dir: JobDir, handle: dict) -> None:
    """Persist ``handle`` as ``job_dir``'s launch.json (atomically)."""
    write_bytes_atomic(job_dir.path / HANDLE_NAME, json_bytes(handle))


def was_launched(job_dir: JobDir) -> bool:
    """True if ``job_dir`` holds a launch.json (of any content): it was started before."""
    return os.path.lexists(job_dir.path / HANDLE_NAME)
