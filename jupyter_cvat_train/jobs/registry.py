"""The registry of job kinds: what a kind is called, how its spec is checked, what runs it.

Every part that deals with kinds takes them from here: the spec check
(:func:`.specs.check_spec` dispatches to the kind's ``check``), the queue (the kind's
``resource``), the job process (:mod:`.run` calls the kind's ``run``), the server (the
path fields it shows relative to its root) and the CLI.

A kind names its functions as ``"module:function"`` texts, imported only when needed,
so listing kinds imports no torch. Each kind names the resource it competes for, which
the queue (:mod:`.queue`) uses to limit how many run at once:

- ``"accelerator"``: heavy jobs that want a GPU (training, inference); one per GPU,
  or one at a time on a machine without a GPU;
- ``"io"``: light jobs (sync, validation) with their own, larger limit.

Kinds register with :func:`register_kind`: the built-in ones below, a package's through
the entry point group ``jupyter_cvat_train.job_kinds`` (the entry point names a JobKind
or a module that registers its kinds when imported), or at run time (a test, a notebook).
See docs/architecture.md, "Worked example: adding a job kind".
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

RESOURCES = ("accelerator", "io")
ENTRY_POINT_GROUP = "jupyter_cvat_train.job_kinds"
log = logging.getLogger(__name__)


def load_target(target: str) -> Callable:
    """The function named by ``target`` (``"package.module:function"``). Raises
    ImportError (module missing) or AttributeError (no such function) or ValueError
    (not of that form)."""
    module, sep, name = target.partition(":")
    if not sep or not module or not name:
        raise ValueError(f"expected 'module:function', not {target[:200]!r}")
    obj: Any = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class JobKind:
    """One kind of job.

    name: the spec's ``kind`` value; run: ``"module:function"`` of the job function
    ``fn(ctx: JobContext) -> dict | None`` (its outputs); resource: one of
    :data:`RESOURCES`; check: ``"module:function"`` of the spec check
    ``check(spec: dict, root: Path, options: SpecOptions) -> dict`` (the spec to write,
    paths absolute; raises SpecError), or None: then each of ``path_fields`` must name an
    existing path inside the root and each of ``optional_path_fields`` is null or a path
    inside it. path_fields / optional_path_fields: the spec keys holding paths (shown
    relative to the server root by the API). heavy_check: the check reads much (train
    validates its dataset), so the server runs it in its bounded validation pool.
    description: one line for listings. gpus: ``"module:function"`` of
    ``gpus(spec: dict) -> int``, how many GPUs an accelerator job of this kind holds on
    a machine with GPUs (it must import no framework: the scheduler calls it), or None:
    one.
    """

    name: str
    run: str
    resource: str = "accelerator"
    check: str | None = None
    path_fields: tuple[str, ...] = ()
    optional_path_fields: tuple[str, ...] = field(default=())
    heavy_check: bool = False
    description: str = ""
    gpus: str | None = None

    def __post_init__(self) -> None:
        if self.resource not in RESOURCES:
            raise ValueError(f"job kind {self.name!r}: resource must be one of {RESOURCES}, not {self.resource!r}")
        for what, target in (("run", self.run), ("check", self.check), ("gpus", self.gpus)):
            if target is not None and (not isinstance(target, str) or ":" not in target):
                raise ValueError(f"job kind {self.name!r}: {what} must be 'module:function', not {target!r}")

    @property
    def module(self) -> str:
        """The module of the run function (built-in kinds: under ``jupyter_cvat_train.``)."""
        return self.run.partition(":")[0]

    @property
    def all_path_fields(self) -> tuple[str, ...]:
        """The required and the optional path fields."""
        return self.path_fields + self.optional_path_fields

    def run_function(self) -> Callable:
        """The job function (imported now). Raises ImportError / AttributeError."""
        return load_target(self.run)

    def check_function(self) -> Callable | None:
        """The spec check (imported now), or None for the path-fields check."""
        return load_target(self.check) if self.check else None

    def gpus_of(self, spec: dict) -> int:
        """The GPUs a job of this kind with ``spec`` holds (see ``gpus``), at least 1;
        1 when the function cannot be loaded or fails (logged)."""
        if self.gpus is None:
            return 1
        try:
            return max(1, int(load_target(self.gpus)(spec)))
        except Exception:  # noqa: BLE001 - a broken plug-in gets one GPU, not a stuck queue
            log.exception("cvat-train: %s of job kind %s failed: the job gets one GPU", self.gpus, self.name)
            return 1


_KINDS: dict[str, JobKind] = {}
_plugins_loaded = False


def register_kind(kind: JobKind) -> JobKind:
    """Add (or replace) a job kind in the registry and return it."""
    _KINDS[kind.name] = kind
    return kind


def load_plugins() -> None:
    """Register the kinds of installed packages (entry point group
    :data:`ENTRY_POINT_GROUP`), once per process. A broken plug-in is logged and skipped."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
            if isinstance(obj, JobKind):
                register_kind(obj)
        except Exception:  # noqa: BLE001 - one broken plug-in must not hide the others
            log.exception("cvat-train: the job kind plug-in %s could not be loaded: skipped", ep.value)


def get_kind(name: str) -> JobKind:
    """The registered kind called ``name``. Raises KeyError with the known kinds."""
    load_plugins()
    try:
        return _KINDS[name]
    except (KeyError, TypeError):
        raise KeyError(f"unknown job kind {str(name)[:64]!r}: expected one of {', '.join(sorted(_KINDS))}") from None


def list_kinds() -> list[JobKind]:
    """All registered kinds, sorted by name."""
    load_plugins()
    return [_KINDS[k] for k in sorted(_KINDS)]


def path_fields() -> frozenset[str]:
    """Every spec key that some registered kind holds a path in."""
    return frozenset(f for kind in list_kinds() for f in kind.all_path_fields)


register_kind(
    JobKind(
        "train",
        "jupyter_cvat_train.training.job:train_job",
        "accelerator",
        check="jupyter_cvat_train.jobs.specs:check_train",
        path_fields=("dataset",),
        optional_path_fields=("checkpoint",),
        heavy_check=True,
        description="train a model template on a CVAT export",
        gpus="jupyter_cvat_train.training.plan:requested_gpus",
    )
)
register_kind(
    JobKind(
        "annotate",
        "jupyter_cvat_train.annotate.pipeline:run_annotate",
        "accelerator",
        check="jupyter_cvat_train.jobs.specs:check_annotate",
        path_fields=("model", "images"),
        optional_path_fields=("output", "model_dir"),
        description="annotate images with a trained model (a CVAT-importable zip)",
    )
)
register_kind(
    JobKind(
        "sync",
        "jupyter_cvat_train.storage.job:sync_job",
        "io",
        check="jupyter_cvat_train.jobs.specs:check_sync",
        path_fields=("workspace",),
        description="sync a workspace folder with object storage",
    )
)
register_kind(
    JobKind(
        "validate",
        "jupyter_cvat_train.datasets.job:validate_job",
        "io",
        path_fields=("dataset",),
        description="validate a CVAT export",
    )
)
# CVAT itself (the cvat extra): the connection comes from the job process's environment,
# never from job.json (jupyter_cvat_train/cvat/connection.py).
register_kind(
    JobKind(
        "cvat-pull",
        "jupyter_cvat_train.cvat.job:pull_job",
        "io",
        check="jupyter_cvat_train.cvat.job:check_pull",
        optional_path_fields=("output",),
        description="download a CVAT task's export into the workspace and validate it",
    )
)
register_kind(
    JobKind(
        "cvat-push",
        "jupyter_cvat_train.cvat.job:push_job",
        "io",
        check="jupyter_cvat_train.cvat.job:check_push",
        path_fields=("source",),
        description="send an annotate job's output to a CVAT task",
    )
)
register_kind(
    JobKind(
        "cvat-auto-annotate",
        "jupyter_cvat_train.cvat.job:auto_annotate_job",
        "accelerator",
        check="jupyter_cvat_train.cvat.job:check_auto_annotate",
        path_fields=("model",),
        description="auto-annotate a CVAT task with a trained model (on this machine)",
    )
)
