"""The CVAT job kinds: ``cvat-pull``, ``cvat-push``, ``cvat-auto-annotate`` (registered in
:mod:`..jobs.registry`).

Specs (job.json; never a host, token or password: the job process reads the connection
from its environment, which it inherits from the server or the CLI that started it, see
:mod:`.connection`):

- ``cvat-pull``: ``task_id`` (int), ``output`` (a new ``.zip`` inside the root),
  ``format`` (ours, e.g. ``cvat``, or CVAT's name; default ``cvat``), ``include_images``
  (default true), ``overwrite`` (default false). Outputs: the pull's result with its
  validation summary.
- ``cvat-push``: ``task_id``, ``source`` (an annotate job folder or an annotations zip
  inside the root), ``replace`` (default false). Outputs: the push report.
- ``cvat-auto-annotate``: ``task_id``, ``model`` (a model folder inside the root),
  ``threshold`` (null or [0, 1]), ``replace`` (default false), ``device`` (default auto).

The checks (``check_*``) run in the server before the job is queued; the functions
(``*_job``) in the job process.
"""

from __future__ import annotations

from pathlib import Path

from ..jobs.runtime import JobContext
from ..jobs.runtime.messages import shown
from ..jobs.specs import SpecError, resolve_inside


def _task_id(spec: dict) -> int:
    t = spec.get("task_id")
    if isinstance(t, bool) or not isinstance(t, int) or t < 1:
        raise SpecError(f"task_id: expected a CVAT task id (a whole number >= 1), got {shown(t)}", 400)
    return t


def _flag(spec: dict, name: str, default: bool = False) -> bool:
    v = spec.get(name, default)
    if v is None:
        return default
    if not isinstance(v, bool):
        raise SpecError(f"{name}: expected true or false, got {shown(v)}", 400)
    return v


def _text(spec: dict, name: str, default: str) -> str:
    v = spec.get(name, default)
    if v is None:
        return default
    if not isinstance(v, str) or not v.strip() or len(v) > 100:
        raise SpecError(f"{name}: expected a text of at most 100 characters, got {shown(v)}", 400)
    return v.strip()


def check_pull(spec: dict, root: Path, options) -> dict:
    """The ``cvat-pull`` check: a task id, a new ``.zip`` output inside ``root`` in an
    existing folder (409 if it exists without ``overwrite``), a format text."""
    out = {**spec, "task_id": _task_id(spec)}
    output = resolve_inside(root, spec.get("output"), "output", must_exist=False)
    if output.suffix.lower() != ".zip":
        raise SpecError(f"output: {shown(spec.get('output'))} must name a .zip file (the export is a zip)", 400)
    if not output.parent.is_dir():
        raise SpecError(f"output: the folder of {shown(spec.get('output'))} does not exist", 404)
    out["overwrite"] = _flag(spec, "overwrite")
    if output.exists() and not out["overwrite"]:
        raise SpecError(f"output: {shown(spec.get('output'))} exists: choose another name or set overwrite", 409)
    out["output"] = str(output)
    out["format"] = _text(spec, "format", "cvat")
    out["include_images"] = _flag(spec, "include_images", True)
    return out


def check_push(spec: dict, root: Path, options) -> dict:
    """The ``cvat-push`` check: a task id, a ``source`` inside ``root`` that exists."""
    return {
        **spec,
        "task_id": _task_id(spec),
        "source": str(resolve_inside(root, spec.get("source"), "source")),
        "replace": _flag(spec, "replace"),
    }


def check_auto_annotate(spec: dict, root: Path, options) -> dict:
    """The ``cvat-auto-annotate`` check: a task id, a model folder with classes.csv inside
    ``root``, a threshold in [0, 1] or null."""
    model = resolve_inside(root, spec.get("model"), "model")
    if not (model / "classes.csv").is_file():
        raise SpecError(
            f"model: {shown(spec.get('model'))} is not a trained model folder (no classes.csv in it): give the "
            "output/model folder of a finished train job",
            400,
        )
    t = spec.get("threshold")
    if t is not None and (isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 <= t <= 1):
        raise SpecError(f"threshold: expected null or a number in [0, 1], got {shown(t)}", 400)
    return {
        **spec,
        "task_id": _task_id(spec),
        "model": str(model),
        "threshold": t,
        "replace": _flag(spec, "replace"),
        "device": _text(spec, "device", "auto"),
    }


class JobProgress:
    """A ``cvat_sdk`` progress reporter that reports to a job (``ctx.progress``), at most
    a few times a second."""

    def __init__(self, ctx: JobContext, unit: str):
        from cvat_sdk.core.progress import BaseProgressReporter

        outer = self

        class _Reporter(BaseProgressReporter):
            def start2(self, total, *, desc=None, unit=unit, **kwargs):
                super().start2(total, desc=desc, unit=unit, **kwargs)
                outer.total, outer.done = int(total or 0), 0
                ctx.progress(0, outer.total, outer.unit)

            def report_status(self, progress):
                super().report_status(progress)
                outer.done = int(progress)
                outer._emit()

            def advance(self, delta):
                super().advance(delta)
                outer.done += int(delta)
                outer._emit()

            def finish(self):
                outer._emit(force=True)
                super().finish()

        self.ctx, self.unit, self.total, self.done, self._last = ctx, unit, 0, 0, 0.0
        self.reporter = _Reporter()

    def _emit(self, force: bool = False) -> None:
        import time

        t = time.monotonic()
        if force or t - self._last >= 0.25:
            self._last = t
            self.ctx.progress(self.done, self.total, self.unit)
        self.ctx.check_cancelled()


def _connect():
    from .connection import connect, settings_from_environment

    settings = settings_from_environment()
    return settings, connect(settings)


def pull_job(ctx: JobContext) -> dict:
    """Run a ``cvat-pull`` job (module docstring)."""
    from .transfer import pull

    spec = ctx.spec
    settings, client = _connect()
    ctx.log(f"pulling task {spec['task_id']} from {settings.host} as {spec.get('format', 'cvat')}")
    with client:
        out = pull(
            client,
            settings,
            spec["task_id"],
            spec["output"],
            format=spec.get("format", "cvat"),
            include_images=spec.get("include_images", True),
            overwrite=spec.get("overwrite", False),
            pbar=JobProgress(ctx, "B").reporter,
        )
    v = out["validation"] or {}
    out["message"] = (
        f"task {out['task']} ({out['task_name']}) pulled to {out['output']}: {v.get('images', 0)} images, "
        f"{v.get('annotations', 0)} annotations, {v.get('errors', 0)} validation errors"
    )
    return out


def push_job(ctx: JobContext) -> dict:
    """Run a ``cvat-push`` job (module docstring)."""
    from .transfer import push

    spec = ctx.spec
    settings, client = _connect()
    with client:
        rep = push(client, settings, spec["source"], spec["task_id"], replace=spec.get("replace", False))
    rep["message"] = (
        f"sent {rep['sent']} shapes to task {rep['task']} ({'replaced' if rep['replace'] else 'added'}); "
        f"it now has {rep['task_shapes_after']}"
    )
    return rep


def auto_annotate_job(ctx: JobContext) -> dict:
    """Run a ``cvat-auto-annotate`` job (module docstring)."""
    from .transfer import auto_annotate

    spec = ctx.spec
    settings, client = _connect()
    with client:
        out = auto_annotate(
            client,
            settings,
            spec["task_id"],
            spec["model"],
            threshold=spec.get("threshold"),
            replace=spec.get("replace", False),
            device=spec.get("device", "auto"),
            pbar=JobProgress(ctx, "images").reporter,
        )
    out["message"] = (
        f"task {out['task']} annotated ({', '.join(out['labels'])}); it now has {out['task_shapes_after']} shapes"
    )
    return out
