"""Checking a job spec from a client before anything is launched.

:func:`check_spec` turns what a client posted (``{"kind", "template", "dataset",
"parameters", "checkpoint", ...}``, paths relative to a root folder) into the spec
written to job.json (paths absolute), or raises :class:`SpecError` with an HTTP-style
status, a message naming the field and the fix, and details (e.g. the dataset's
validation report). Paths must resolve inside the root: no ``..``, no symlink that
leads out.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .kinds import get_kind


class SpecError(ValueError):
    """A client's mistake in a job spec or path. ``status``: 400 (malformed), 403 (path
    outside the root), 404 (missing path/template), 422 (dataset fails validation);
    ``details``: extra JSON for the client (a validation report) or None."""

    def __init__(self, message: str, status: int = 400, details: Any = None):
        super().__init__(message)
        self.status = status
        self.details = details


def resolve_inside(root: Path | str, path: Any, field: str = "path", must_exist: bool = True) -> Path:
    """Resolve client path ``path`` (relative to ``root``, or absolute inside it) to an
    absolute real path inside ``root``. Raises SpecError: 400 if not a string, 403 if it
    uses ``..`` or resolves (through symlinks) outside ``root``, 404 if ``must_exist``
    and it does not exist."""
    if not isinstance(path, str) or not path.strip():
        raise SpecError(f"{field}: expected a path (a non-empty string), got {path!r}", 400)
    root_real = Path(os.path.realpath(root))
    raw = Path(path.strip())
    if ".." in raw.parts:
        raise SpecError(f"{field}: '..' is not allowed in paths ({path!r}); give a path inside the server root", 403)
    candidate = raw if raw.is_absolute() else root_real / raw
    real = Path(os.path.realpath(candidate))
    if real != root_real and root_real not in real.parents:
        raise SpecError(f"{field}: {path!r} is outside the server root folder; only files under it can be used", 403)
    if must_exist and not real.exists():
        raise SpecError(f"{field}: {path!r} does not exist under the server root folder", 404)
    return real


def validate_dataset(root: Path | str, path: Any, field: str = "dataset", format: str | None = None):
    """Resolve ``path`` inside ``root`` and validate the CVAT export there with
    :func:`jupyter_cvat_train.datasets.validate_export`. Returns (real path,
    ValidationReport). Raises SpecError for a path outside ``root`` or missing."""
    from ..datasets import validate_export

    real = resolve_inside(root, path, field)
    return real, validate_export(real, format=format or None)


def form_parameters(parameters: Any, template) -> Any:
    """The hyperparameter inputs of a template form ``{parameter name: value}`` as
    :func:`jupyter_cvat_train.models.parse_hyperparameters` takes them: the texts of
    the template's textarea parameters (e.g. ``hyperparameters``) first, then the other
    fields as one dict (so an explicit ``epochs`` field wins); empty values dropped
    (an empty field means "the default"). Texts and lists pass unchanged."""
    if not isinstance(parameters, dict):
        return parameters
    textareas = [p.get("name") for p in template.parameters if str(p.get("type", "")).startswith("textarea")]
    texts = [parameters[k] for k in textareas if parameters.get(k) not in (None, "")]
    flat = {k: v for k, v in parameters.items() if k not in textareas and v not in (None, "")}
    return texts + [flat] if texts else flat


def _check_train(spec: dict, root: Path) -> dict:
    from .. import models

    name = spec.get("template")
    if not isinstance(name, str) or not name:
        raise SpecError("template: give the name of a model template (see GET templates)", 400)
    try:
        template = models.get_template(name)
    except (KeyError, LookupError, ValueError) as e:
        known = ", ".join(getattr(t, "name", str(t)) for t in models.list_templates())
        raise SpecError(f"template: unknown template {name!r}; known: {known}", 404, {"error": str(e)}) from None
    parameters = spec.get("parameters") or {}
    if not isinstance(parameters, (dict, str, list)):
        raise SpecError("parameters: expected an object {name: value}", 400)
    parameters = form_parameters(parameters, template)
    try:
        models.parse_hyperparameters(parameters, template)
    except ValueError as e:
        raise SpecError(f"parameters: {e}", 400, {"error": str(e)}) from None
    dataset, report = validate_dataset(root, spec.get("dataset"), format=spec.get("format"))
    report_dict = report.to_dict()
    if not report.ok:
        raise SpecError(f"dataset: {spec.get('dataset')!r} has validation errors; fix them and try again", 422, report_dict)
    out = {**spec, "template": name, "parameters": parameters, "dataset": str(dataset)}
    if spec.get("checkpoint") not in (None, ""):
        out["checkpoint"] = str(resolve_inside(root, spec["checkpoint"], "checkpoint"))
    else:
        out["checkpoint"] = None
    return out


def _check_sync(spec: dict, root: Path) -> dict:
    direction = spec.get("direction")
    if direction not in ("up", "down"):
        raise SpecError("direction: expected \"up\" (workspace to storage) or \"down\"", 400)
    out = {**spec, "workspace": str(resolve_inside(root, spec.get("workspace"), "workspace",
                                                   must_exist=direction == "up"))}
    storage = spec.get("storage")
    if not isinstance(storage, str) or not storage:
        raise SpecError("storage: expected s3://bucket/prefix or file:///path", 400)
    if storage.startswith("file://"):  # a local storage folder is a path like any other
        out["storage"] = "file://" + str(resolve_inside(root, storage[len("file://"):], "storage", must_exist=False))
    return out


def _check_annotate(spec: dict, root: Path) -> dict:
    model = spec.get("model") if spec.get("model") not in (None, "") else spec.get("model_dir")
    out = {**spec, "images": str(resolve_inside(root, spec.get("images"), "images")),
           "model": str(resolve_inside(root, model, "model"))}
    out.pop("model_dir", None)
    if spec.get("output") not in (None, ""):
        out["output"] = str(resolve_inside(root, spec["output"], "output", must_exist=False))
    return out


def check_spec(spec: Any, root: Path | str) -> dict:
    """The spec to write to job.json for client spec ``spec``; paths resolved inside
    ``root``. For ``train``: template exists, parameters parse, dataset validates with no
    errors, checkpoint exists. For ``sync``: the workspace (and a file:// storage) inside
    ``root``. For ``annotate``: images and model exist, output inside ``root``. For other kinds: the kind's path fields exist. Raises
    SpecError."""
    if not isinstance(spec, dict):
        raise SpecError("expected a JSON object {kind, ...}", 400)
    try:
        kind = get_kind(spec.get("kind") if isinstance(spec.get("kind"), str) else "")
    except KeyError as e:
        raise SpecError(f"kind: {e.args[0]}", 400) from None
    root = Path(root)
    if kind.name == "train":
        return _check_train(spec, root)
    if kind.name == "sync":
        return _check_sync(spec, root)
    if kind.name == "annotate":
        return _check_annotate(spec, root)
    out = dict(spec)
    for key in kind.path_fields:
        out[key] = str(resolve_inside(root, spec.get(key), key))
    for key in kind.optional_path_fields:
        if spec.get(key) not in (None, ""):
            out[key] = str(resolve_inside(root, spec[key], key))
    return out
