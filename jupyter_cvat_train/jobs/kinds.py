"""The registry of job kinds: kind name -> the module run as ``python -m <module> JOB_DIR``.

Kinds are pluggable: a new capability registers its module with :func:`register_kind`
(the built-in ones are below). Each kind names the resource it competes for, which the
queue (:mod:`.queue`) uses to limit how many run at once:

- ``"accelerator"``: heavy jobs that want a GPU (training, inference); one per GPU,
  or one at a time on a machine without a GPU;
- ``"io"``: light jobs (sync, validation) with their own, larger limit.

``path_fields`` are the keys of a job spec that hold paths from the client; the spec
check (:mod:`.specs`) resolves them inside the server's root_dir.
"""
from __future__ import annotations

from dataclasses import dataclass, field

RESOURCES = ("accelerator", "io")


@dataclass(frozen=True)
class JobKind:
    """One kind of job.

    name: the spec's ``kind`` value; module: importable module with a ``__main__``
    that takes ``JOB_DIR``; resource: one of :data:`RESOURCES`; path_fields: spec keys
    holding input paths (must exist); optional_path_fields: spec keys holding input
    paths that may be null.
    """

    name: str
    module: str
    resource: str = "accelerator"
    path_fields: tuple[str, ...] = ()
    optional_path_fields: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.resource not in RESOURCES:
            raise ValueError(f"job kind {self.name!r}: resource must be one of {RESOURCES}, not {self.resource!r}")


_KINDS: dict[str, JobKind] = {}


def register_kind(kind: JobKind) -> JobKind:
    """Add (or replace) a job kind in the registry and return it."""
    _KINDS[kind.name] = kind
    return kind


def get_kind(name: str) -> JobKind:
    """The registered kind called ``name``. Raises KeyError with the known kinds."""
    try:
        return _KINDS[name]
    except KeyError:
        raise KeyError(f"unknown job kind {name!r}: expected one of {', '.join(sorted(_KINDS))}") from None


def list_kinds() -> list[JobKind]:
    """All registered kinds, sorted by name."""
    return [_KINDS[k] for k in sorted(_KINDS)]


register_kind(JobKind("train", "jupyter_cvat_train.training", "accelerator",
                      path_fields=("dataset",), optional_path_fields=("checkpoint",)))
register_kind(JobKind("annotate", "jupyter_cvat_train.annotate", "accelerator",
                      path_fields=("model", "images"), optional_path_fields=("output",)))
register_kind(JobKind("sync", "jupyter_cvat_train.storage", "io", path_fields=("workspace",)))
register_kind(JobKind("validate", "jupyter_cvat_train.datasets", "io", path_fields=("dataset",)))
