"""Where the API's jobs live: the runs root and the root folder, and the one
:class:`~jupyter_cvat_train.jobs.manager.JobManager` per runs root of this process.

The same rules as ``cvat-train jobs``: the runs root is ``$CVAT_TRAIN_RUNS_ROOT`` or
``./cvat-train-runs``; the root folder (job paths must lie inside it, as the server's
``root_dir``) is ``$CVAT_TRAIN_ROOT_DIR`` or the runs root's parent. A Jupyter server
with this extension gives both variables to the kernels it starts
(:mod:`jupyter_cvat_train.server.app`), so a notebook's jobs land in the runs root the
panel shows. :func:`set_runs_root` (or ``%config CvatTrainMagics.runs_root``) overrides
them for this process.

Scheduling: the lease of the runs root (:mod:`jupyter_cvat_train.jobs.scheduler`) is
taken only while an API call works (create, poll, wait, follow) and given up when it
returns, as ``cvat-train jobs submit`` does, so a server started later on the same runs
root is never kept from scheduling by an idle kernel.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from pathlib import Path

RUNS_ROOT_ENV = "CVAT_TRAIN_RUNS_ROOT"
ROOT_DIR_ENV = "CVAT_TRAIN_ROOT_DIR"
DEFAULT_RUNS_DIR = "cvat-train-runs"
# Job processes this API starts run at the Jupyter server's default nice value
# (CvatTrainApp.job_niceness), so a training started from a notebook leaves the server as
# responsive as one started from the panel.
JOB_NICENESS = 5

_override: dict[str, Path | None] = {"runs_root": None, "root_dir": None}
_managers: dict[Path, object] = {}
_lock = threading.Lock()


def set_runs_root(runs_root: str | os.PathLike | None, root_dir: str | os.PathLike | None = None) -> None:
    """Use ``runs_root`` (and ``root_dir``) for the API calls of this process from now
    on; None goes back to the environment variables / ``./cvat-train-runs``."""
    _override["runs_root"] = Path(runs_root).expanduser().absolute() if runs_root else None
    _override["root_dir"] = Path(root_dir).expanduser().absolute() if root_dir else None


def runs_root() -> Path:
    """The runs root (an absolute path; it may not exist yet)."""
    if _override["runs_root"] is not None:
        return _override["runs_root"]
    env = os.environ.get(RUNS_ROOT_ENV)
    return Path(env).expanduser().absolute() if env else Path.cwd() / DEFAULT_RUNS_DIR


def root_dir() -> Path:
    """The folder every path of a job must lie inside (the server's root_dir): the
    override, ``$CVAT_TRAIN_ROOT_DIR``, else the runs root's parent."""
    if _override["root_dir"] is not None:
        return _override["root_dir"]
    env = os.environ.get(ROOT_DIR_ENV)
    if env and _override["runs_root"] is None:
        return Path(env).expanduser().absolute()
    return runs_root().parent


def manager(create: bool = False, root: Path | None = None):
    """The JobManager of runs root ``root`` (default: the current one; one manager per
    runs root and process, kept), its index reconciled with the folders when first made.
    ``create``: make the runs root when missing; otherwise a missing runs root raises
    FileNotFoundError naming it."""
    from ..jobs.manager import JobManager

    root = runs_root() if root is None else root
    if not root.is_dir():
        if not create:
            raise FileNotFoundError(
                f"no runs root at {root}: no job was started here yet (set ${RUNS_ROOT_ENV}, or "
                "%config CvatTrainMagics.runs_root, to use another one)"
            )
        root.mkdir(parents=True, exist_ok=True)
    key = root.resolve()
    with _lock:
        m = _managers.get(key)
        if m is None:
            from ..jobs.backends.ray import backends_from_env

            m = JobManager(
                key,
                root_dir=root_dir(),
                niceness=JOB_NICENESS,
                owner=f"cvat-train API (pid {os.getpid()})",
                backends=backends_from_env(),  # the ray backend when $CVAT_TRAIN_RAY_ADDRESS is set
            )
            m.reconcile()
            m.lease.release()
            _managers[key] = m
        else:
            m.root_dir = Path(os.path.realpath(root_dir()))
        return m


@contextmanager
def scheduling(m):
    """Hold ``m``'s scheduler lease (when no other process does) for the block, then give
    it up: this process schedules the runs root only while an API call works in it."""
    try:
        yield m
    finally:
        m.lease.release()


def close_all() -> None:
    """Close every manager of this process (give the leases up, close the indexes)."""
    with _lock:
        for m in _managers.values():
            m.close()
        _managers.clear()
