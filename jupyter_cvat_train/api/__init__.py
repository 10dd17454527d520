"""The Python API for notebooks and scripts::

    from jupyter_cvat_train.api import validate, train, annotate, sync, jobs, models, Job
    # or, at the top level: from jupyter_cvat_train import validate, train, ..., list_jobs, list_models

    report = validate("export.zip")             # ValidationReport: .ok .summary .findings
    job = train("export.zip", hyperparameters="epochs: 5")   # Job, queued in the runs root
    job.wait()                                  # raises JobFailed with the job's message
    job.metrics                                 # per epoch (a DataFrame with pandas)
    annotate("new-images/", job, "pre.zip", preview=4).wait()

Thin over the core: the same job kinds, spec checks (:func:`jupyter_cvat_train.jobs.specs.check_spec`)
and :class:`~jupyter_cvat_train.jobs.manager.JobManager` as the server and ``cvat-train
jobs submit``. Jobs are detached processes in the runs root (see :mod:`.config`): they
show in the JupyterLab panel and in ``cvat-train jobs``, and survive a kernel restart.
Paths may be relative to the current folder; every path must lie inside the root folder
(:func:`.config.root_dir`, the server's root_dir under JupyterLab).

Errors: bad input raises ValueError (a subclass, :class:`SpecError`, for a refused
spec: the message names the field and the fix), FileNotFoundError for a missing input,
:class:`JobNotFound` for an unknown job id, :class:`JobFailed` from ``Job.wait()``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .config import root_dir, runs_root, set_runs_root
from .job import Job, JobFailed, JobNotFound, jobs
from .report import ValidationReport

__all__ = [
    "Job",
    "JobFailed",
    "JobNotFound",
    "SpecError",
    "ValidationReport",
    "annotate",
    "jobs",
    "list_jobs",
    "list_models",
    "models",
    "root_dir",
    "runs_root",
    "sample_dataset",
    "set_runs_root",
    "submit",
    "sync",
    "train",
    "validate",
]


def __getattr__(name: str):
    if name == "SpecError":
        from ..jobs.specs import SpecError

        return SpecError
    if name == "DEFAULT_MODEL":
        from ..models.catalog import DEFAULT_TEMPLATE

        return DEFAULT_TEMPLATE
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _path(value: Any, field: str) -> str:
    """An absolute path (relative ones are taken from the current folder)."""
    if isinstance(value, Job):
        return str(value.dir)
    if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
        raise ValueError(f"{field}: expected a path (text or Path), got {str(value)[:60]!r}")
    return os.path.abspath(os.path.expanduser(os.fspath(value)))


def _configure_templates() -> None:
    from ..models import configure_search_path

    configure_search_path(root_dir=root_dir())  # user templates in <root>/cvat-train-templates, as the server


def validate(path: str | os.PathLike, format: str | None = None) -> ValidationReport:
    """Validate the CVAT export at ``path`` (a .zip or a folder), in this process.

    format: force a format (``coco``, ``cvat``, ``voc``, ``yolo``, ``tfrecord``,
    ``labelme``, ``mot``); None detects it. Never raises for a bad export: the report
    says what is wrong (``.ok`` False, ``.findings``). Raises ValueError for an
    unknown format name."""
    from ..datasets.formats import FORMATS
    from ..datasets.validate import validate_export

    if format is not None and format not in FORMATS:
        raise ValueError(f"format: unknown format {str(format)[:40]!r}; choose one of {', '.join(sorted(FORMATS))}")
    return ValidationReport(validate_export(_path(path, "path"), format))


def models() -> list:
    """The model templates (:class:`jupyter_cvat_train.models.Template`: name,
    display_name, task, description, defaults, ...), the default one first."""
    from ..models import DEFAULT_TEMPLATE, list_templates

    _configure_templates()
    return sorted(list_templates(), key=lambda t: (t.name != DEFAULT_TEMPLATE, t.name))


def sample_dataset(
    out: str | os.PathLike, images: int = 200, format: str = "coco", seed: int = 0, width: int = 320, height: int = 240
) -> Path:
    """Write a sample CVAT export of circles, squares and triangles (``cvat-train
    sample-dataset``) to ``out`` (a folder, or a .zip). Returns its path. Raises
    FileExistsError when ``out`` exists, ValueError for bad sizes."""
    from ..datasets.sample import generate_sample

    return generate_sample(_path(out, "out"), format=format, images=images, seed=seed, width=width, height=height)


def submit(spec: dict) -> Job:
    """Queue the job of ``spec`` (``{"kind", ...}`` as ``POST jobs`` and ``cvat-train
    jobs submit`` take it; its kind's path fields absolute or relative to the current
    folder, and inside the root folder). The spec is
    checked first (raises SpecError: a ValueError naming the field and the fix); the job
    starts now when a slot is free and no other process schedules the runs root, else
    when the scheduler (the Jupyter server) gets to it. Returns the Job."""
    from ..jobs.registry import get_kind
    from ..jobs.specs import check_spec
    from . import config

    if isinstance(spec, dict) and isinstance(spec.get("kind"), str):
        try:
            fields = get_kind(spec["kind"]).all_path_fields
        except KeyError:
            fields = ()  # check_spec names the unknown kind
        spec = {
            **spec,
            **{k: _path(spec[k], k) for k in fields if isinstance(spec.get(k), (str, os.PathLike)) and spec[k] != ""},
        }
    from ..jobs.backends.ray import backends_from_env

    rr = runs_root()
    names = ["local", *(b.name for b in backends_from_env())]
    checked = check_spec(spec, root_dir(), runs_root=rr.resolve() if rr.exists() else rr, backends=names)
    m = config.manager(create=True)
    with config.scheduling(m):
        job = m.create(checked)
    return Job(job["id"], job, m.runs_root)


def train(
    dataset: str | os.PathLike,
    model: str | None = None,
    output: str | os.PathLike | None = None,
    hyperparameters: dict | str | list | None = None,
    checkpoint: str | os.PathLike | Job | None = None,
    resume: bool = False,
    device: str = "auto",
    gpus: int | None = None,
    epochs: int | None = None,
    format: str | None = None,
    backend: str | None = None,
) -> Job:
    """Train ``model`` (a template name, see :func:`models`; default the catalog's
    default) on the CVAT export ``dataset`` as a detached job. Returns the Job at once.

    hyperparameters: a dict, YAML text (``"epochs: 5\\nimage_size: 320"``), ``key=value``
    lines or ``"a=1,b=2"`` (Onepanel's spellings accepted), or a list of those;
    epochs: overrides them. checkpoint: fine-tune from a model folder, a checkpoints
    folder or a .pt file, or from a finished train Job (its model; with ``resume``, its
    last checkpoint: the run continues, a larger ``epochs`` extends it). device: auto,
    cpu, cuda, cuda:N. gpus: > 1 trains with DistributedDataParallel.
    output: a folder to copy the trained model folder into when :meth:`Job.wait` sees
    the job succeed (it must not exist yet); the job itself writes into its folder in the
    runs root (``job.outputs["model_dir"]``). backend: where it runs, ``"local"`` (default)
    or ``"ray"`` (the Ray cluster at ``$CVAT_TRAIN_RAY_ADDRESS``; the runs root on a
    filesystem the cluster's nodes share).

    The dataset is validated before the job is queued: raises SpecError (a ValueError)
    naming the field and the fix for an unknown template, a bad hyperparameter (listing
    the valid keys), an export with errors, or a path outside the root folder."""
    from ..models.catalog import DEFAULT_TEMPLATE
    from ..models.device import DEVICES

    _configure_templates()
    if device not in DEVICES and not str(device).lower().startswith("cuda:"):
        raise ValueError(f"device: {str(device)[:20]!r} is not one of {', '.join(DEVICES)} or cuda:N")
    for name, value in (("gpus", gpus), ("epochs", epochs)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise ValueError(f"{name}: expected a whole number >= 1, got {value!r}")
    if output is not None and os.path.lexists(_path(output, "output")):
        raise FileExistsError(f"output: {output} exists already; name a new folder for the trained model")
    if isinstance(checkpoint, Job):
        sub = "checkpoints" if resume else "model"
        checkpoint = str(checkpoint.dir / "output" / sub)
    spec = {
        "kind": "train",
        "template": model or DEFAULT_TEMPLATE,
        "dataset": _path(dataset, "dataset"),
        "format": format,
        "parameters": hyperparameters if hyperparameters is not None else {},
        "epochs": epochs,
        "checkpoint": _path(checkpoint, "checkpoint") if checkpoint not in (None, "") else None,
        "resume": bool(resume),
        "device": device,
        "gpus": gpus,
    }
    if backend is not None:
        spec["backend"] = backend
    if resume and spec["checkpoint"] is None:
        raise ValueError("resume: give the run to resume as checkpoint= (a train Job or its checkpoints folder)")
    job = submit(spec)
    if output is not None:
        job.copy_model_to = _path(output, "output")
    return job


def annotate(
    images: str | os.PathLike,
    model_dir: str | os.PathLike | Job,
    output: str | os.PathLike | None = None,
    format: str = "coco",
    threshold: float = 0.5,
    mapping: dict | list | None = None,
    preview: int = 0,
    overwrite: bool = False,
    keep_existing: bool = False,
    max_detections: int = 100,
    device: str = "auto",
    engine: str = "torch",
) -> Job:
    """Auto-annotate ``images`` (a folder, a zip of images, or a CVAT export) with a
    trained model as a detached job; returns the Job (``job.outputs["output"]`` is the
    zip once it succeeded, ``job.outputs["previews"]`` the preview PNGs).

    model_dir: a model folder (a train job's ``output/model``) or a finished train Job.
    output: the zip to write (CVAT: Actions > Upload annotations); None = inside the job
    folder. format: coco, cvat or yolo. threshold: minimum confidence 0..1. mapping:
    ``{"model label": "target label"}`` or ``["A=B", ...]`` (``A=`` drops a label).
    preview: render this many images with their predictions. overwrite: replace an
    existing output. Raises SpecError (a ValueError) naming the field and the fix."""
    from ..annotate.mapping import MappingError, parse_map_pairs

    if isinstance(model_dir, Job):
        model_dir = model_dir.outputs.get("model_dir") or str(model_dir.dir / "output" / "model")
    try:
        pairs = parse_map_pairs(mapping)
    except MappingError as e:
        raise ValueError(str(e)) from None
    spec = {
        "kind": "annotate",
        "images": _path(images, "images"),
        "model_dir": _path(model_dir, "model_dir"),
        "output": _path(output, "output") if output not in (None, "") else None,
        "format": format,
        "threshold": threshold,
        "max_detections": max_detections,
        "mapping": pairs,
        "keep_existing": keep_existing,
        "preview": preview,
        "overwrite": overwrite,
        "device": device,
        "engine": engine,
    }
    return submit(spec)


def sync(
    direction: str,
    workspace: str | os.PathLike,
    storage: str,
    delete: bool = False,
    dry_run: bool = False,
    include: list[str] | tuple[str, ...] = (),
    exclude: list[str] | tuple[str, ...] = (),
    checksum: bool = False,
    endpoint_url: str | None = None,
    concurrency: int = 16,
) -> Job:
    """Sync the ``workspace`` folder with object storage as a detached job: ``direction``
    ``"up"`` (workspace to storage) or ``"down"``; ``storage`` ``s3://bucket/prefix`` or
    ``file:///path`` (an existing folder inside the root folder). ``delete``: remove
    destination files the source lacks. ``dry_run``: plan only (``job.outputs``).
    Returns the Job. Raises SpecError (a ValueError) naming the field and the fix."""
    if direction not in ("up", "down"):
        raise ValueError(f"direction: expected 'up' or 'down', got {str(direction)[:20]!r}")
    if isinstance(storage, os.PathLike) or (isinstance(storage, str) and "://" not in storage):
        storage = Path(_path(storage, "storage")).as_uri()
    spec = {
        "kind": "sync",
        "direction": direction,
        "workspace": _path(workspace, "workspace"),
        "storage": storage,
        "delete": delete,
        "dry_run": dry_run,
        "include": list(include),
        "exclude": list(exclude),
        "checksum": checksum,
        "endpoint_url": endpoint_url,
        "concurrency": concurrency,
    }
    return submit(spec)


list_jobs = jobs  # the top-level package's name for jobs() (jupyter_cvat_train.jobs is a subpackage)
list_models = models  # ... and for models()
