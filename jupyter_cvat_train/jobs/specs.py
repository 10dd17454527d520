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
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .registry import JobKind, get_kind
from .runtime.messages import shown


class SpecError(ValueError):
    """A client's mistake in a job spec or path. ``status``: 400 (malformed), 403 (path
    outside the root), 404 (missing path/template), 422 (dataset fails validation);
    ``details``: extra JSON for the client (a validation report) or None."""

    def __init__(self, message: str, status: int = 400, details: Any = None):
        super().__init__(message)
        self.status = status
        self.details = details


PATH_MAX = 4096  # bytes of an encoded path (Linux PATH_MAX)
NAME_MAX = 255  # bytes of one path component (Linux NAME_MAX)


def resolve_inside(root: Path | str, path: Any, field: str = "path", must_exist: bool = True) -> Path:
    """Resolve client path ``path`` (relative to ``root``, or absolute inside it) to an
    absolute real path inside ``root``. Raises SpecError: 400 if not a string, empty, with
    a NUL byte, longer than PATH_MAX (4096) bytes encoded or with a component longer than
    NAME_MAX (255) bytes; 403 if it uses ``..`` or resolves (through symlinks) outside
    ``root``; 404 if ``must_exist`` and it does not exist. Messages echo at most
    SHOWN_CHARS characters of the input. The size checks run before any resolution, so
    the work is bounded and linear in the input's length."""
    if not isinstance(path, str) or not path.strip():
        raise SpecError(f"{field}: expected a path (a non-empty string), got {shown(path)}", 400)
    if "\0" in path:
        raise SpecError(f"{field}: a path cannot contain a NUL byte ({shown(path)})", 400)
    try:
        encoded = os.fsencode(path.strip())
    except UnicodeError:
        raise SpecError(f"{field}: {shown(path)} is not a valid file name (unpaired surrogate)", 400) from None
    if len(encoded) > PATH_MAX:
        raise SpecError(
            f"{field}: the path is {len(encoded)} bytes long, more than the {PATH_MAX} bytes a path "
            f"can have ({shown(path)})",
            400,
        )
    if any(len(part) > NAME_MAX for part in encoded.split(b"/")):
        raise SpecError(f"{field}: a folder or file name in {shown(path)} is longer than {NAME_MAX} bytes", 400)
    root_real = os.path.realpath(root)
    raw = path.strip()
    if ".." in raw.split("/"):
        raise SpecError(
            f"{field}: '..' is not allowed in paths ({shown(path)}); give a path inside the server root", 403
        )
    real = os.path.realpath(os.path.join(root_real, raw))  # an absolute ``raw`` replaces root_real
    if real != root_real and not real.startswith(root_real.rstrip("/") + "/"):
        raise SpecError(
            f"{field}: {shown(path)} is outside the server root folder; only files under it can be used", 403
        )
    if must_exist and not os.path.exists(real):
        raise SpecError(f"{field}: {shown(path)} does not exist under the server root folder", 404)
    return Path(real)


def validate_dataset(root: Path | str, path: Any, field: str = "dataset", format: Any = None):
    """Resolve ``path`` inside ``root`` and validate the CVAT export there with
    :func:`jupyter_cvat_train.datasets.validate_export`. Returns (real path,
    ValidationReport). Raises SpecError for a path outside ``root`` or missing, and 400
    for a ``format`` that is not a string or null. Heavy (reads the whole export): the
    server runs it in its validation pool, never on the event loop."""
    from ..datasets import validate_export

    if format is not None and not isinstance(format, str):
        raise SpecError(f"format: expected a format name (a string) or null, got {shown(format)}", 400)
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


@dataclass(frozen=True)
class SpecOptions:
    """What a spec check may need beside the spec and the root: runs_root (the runs root,
    which a sync workspace must not contain; None: ``root/cvat-train-runs``) and
    allowed_endpoint_urls (S3 endpoints a sync job may name besides the user's own)."""

    runs_root: Path | str | None = None
    allowed_endpoint_urls: tuple[str, ...] = ()


def check_train(spec: dict, root: Path, options: SpecOptions) -> dict:
    """The ``train`` check: the template exists and can run here (422 when its framework
    or family is not available), the parameters parse, the dataset
    validates with no errors (422 with the report otherwise), the checkpoint exists."""
    from .. import models

    name = spec.get("template")
    if not isinstance(name, str) or not name:
        raise SpecError("template: give the name of a model template (see GET templates)", 400)
    try:
        template = models.get_template(name)
    except (KeyError, LookupError, ValueError):
        known = ", ".join(getattr(t, "name", str(t)) for t in models.list_templates())
        raise SpecError(f"template: unknown template {shown(name)}; known: {known}", 404) from None
    if template.custom is not None:
        return check_custom_train(spec, root, template)
    try:
        models.check_template(template)
    except models.TemplateUnavailable as e:
        raise SpecError(f"template: {e}", 422) from None
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
        raise SpecError(
            f"dataset: {spec.get('dataset')!r} has validation errors; fix them and try again", 422, report_dict
        )
    out = {**spec, "template": name, "parameters": parameters, "dataset": str(dataset)}
    if spec.get("checkpoint") not in (None, ""):
        out["checkpoint"] = str(resolve_inside(root, spec["checkpoint"], "checkpoint"))
    else:
        out["checkpoint"] = None
    return out


def check_custom_train(spec: dict, root: Path, template) -> dict:
    """The ``train`` check of a custom template (the user's code, :mod:`..models.custom`):
    the parameters are the template's (400 otherwise), the dataset validates (422 with
    the report), the checkpoint exists; the commit the template's revision names now is
    recorded as ``code_commit`` (a local repository; null for a remote one or a copied
    folder, resolved when the job clones it), so the run checks out exactly it."""
    from ..custom.code import resolve_commit
    from ..models.custom import parameter_values
    from .runtime import JobError

    parameters = spec.get("parameters") or {}
    try:
        parameter_values(template.custom, parameters)
    except ValueError as e:
        raise SpecError(f"parameters: {e}", 400, {"error": str(e)}) from None
    try:
        commit = resolve_commit(template.custom)
    except JobError as e:
        raise SpecError(f"template: {template.where}: {e}", 422) from None
    dataset, report = validate_dataset(root, spec.get("dataset"), format=spec.get("format"))
    if not report.ok:
        raise SpecError(
            f"dataset: {spec.get('dataset')!r} has validation errors; fix them and try again", 422, report.to_dict()
        )
    out = {**spec, "template": template.name, "parameters": parameters, "dataset": str(dataset), "code_commit": commit}
    if spec.get("checkpoint") not in (None, ""):
        out["checkpoint"] = str(resolve_inside(root, spec["checkpoint"], "checkpoint"))
    else:
        out["checkpoint"] = None
    return out


def check_sync(spec: dict, root: Path, options: SpecOptions) -> dict:
    """The ``sync`` check. Direction; workspace inside ``root`` (existing for an upload); the storage URI
    parsed once (:func:`~jupyter_cvat_train.storage.location.parse_storage_uri`: 400
    malformed, 403 ``..``) and, for ``file://``, an existing folder inside ``root`` (403
    outside, 404 missing); workspace and storage apart (neither contains the other) and
    the workspace not containing ``runs_root`` (default ``root/cvat-train-runs``): 400;
    the other options well typed (400); ``endpoint_url`` null, or in
    ``allowed_endpoint_urls`` or the user's configured endpoint (403 otherwise). The
    spec keeps the canonical storage URI and normalized endpoint that were checked."""
    from dataclasses import replace

    from ..storage.errors import StorageError
    from ..storage.job import options_from_spec
    from ..storage.location import allowed_endpoint, normalize_endpoint_url, parse_storage_uri
    from .runtime import JobError

    runs_root, allowed_endpoint_urls = options.runs_root, options.allowed_endpoint_urls

    direction = spec.get("direction")
    if direction not in ("up", "down"):
        raise SpecError('direction: expected "up" (workspace to storage) or "down"', 400)
    workspace = resolve_inside(root, spec.get("workspace"), "workspace", must_exist=direction == "up")
    try:
        location = parse_storage_uri(spec.get("storage"))
        endpoint = spec.get("endpoint_url")
        endpoint = normalize_endpoint_url(endpoint) if endpoint not in (None, "") else None
    except StorageError as e:
        raise SpecError(str(e), getattr(e, "status", 400)) from None
    if location.scheme == "file":
        resolve_inside(root, str(location.path), "storage", must_exist=False)
        if not location.path.is_dir():
            raise SpecError(
                f"storage: the folder {location.uri} does not exist (or is not a folder): create it "
                "first, as a bucket must be, or check the URI for a typo",
                404,
            )
    try:
        endpoint = allowed_endpoint(endpoint, allowed_endpoint_urls)
    except StorageError as e:
        raise SpecError(str(e), getattr(e, "status", 403)) from None
    out = {**spec, "workspace": str(workspace), "storage": location.uri, "endpoint_url": endpoint}
    runs = Path(runs_root) if runs_root else root / "cvat-train-runs"
    try:
        replace(options_from_spec(out), protected=(str(runs),)).validate()
    except (StorageError, JobError) as e:
        raise SpecError(str(e).removeprefix("job.json: "), getattr(e, "status", 400)) from None
    return out


def check_annotate(spec: dict, root: Path, options: SpecOptions) -> dict:
    """The ``annotate`` check. Images and model exist inside ``root``; every field has its type and range
    (:meth:`AnnotateOptions.from_spec`, 400); the output, if given, is a new file in an
    existing folder inside ``root`` that touches no input (:func:`plan_outputs`: 404 for a
    missing folder, 409 for an existing file without ``overwrite: true``, or for an
    overlap with the images or the model folder even with it)."""
    from ..annotate.outputs import OutputError, plan_outputs
    from ..annotate.pipeline import AnnotateOptions
    from .runtime import JobError

    model = spec.get("model") if spec.get("model") not in (None, "") else spec.get("model_dir")
    out = {
        **spec,
        "images": str(resolve_inside(root, spec.get("images"), "images")),
        "model": str(resolve_inside(root, model, "model")),
    }
    out.pop("model_dir", None)
    output = None
    if spec.get("output") not in (None, ""):
        output = resolve_inside(root, spec["output"], "output", must_exist=False)
        out["output"] = str(output)
    if not (Path(out["model"]) / "classes.csv").is_file():  # what the annotate job reads first
        raise SpecError(
            f"model: {shown(str(model))} is not a trained model folder (no classes.csv in it): give the "
            "output/model folder of a finished train job",
            400,
        )
    try:
        opts = AnnotateOptions.from_spec(out)
    except JobError as e:
        raise SpecError(str(e), 400) from None
    out["overwrite"] = opts.overwrite
    if output is not None:
        try:
            plan_outputs(
                output,
                inputs=[("images", out["images"]), ("model folder", out["model"])],
                overwrite=opts.overwrite,
                previews=opts.preview > 0,
            )
        except OutputError as e:
            raise SpecError(str(e), e.status) from None
    return out


def check_path_fields(kind: JobKind, spec: dict, root: Path) -> dict:
    """The check of a kind without a check function of its own: each of its path fields
    names an existing path inside ``root``, each optional one is null or a path inside
    it (:func:`resolve_inside`); the spec with those paths absolute."""
    out = dict(spec)
    for key in kind.path_fields:
        out[key] = str(resolve_inside(root, spec.get(key), key))
    for key in kind.optional_path_fields:
        if spec.get(key) not in (None, ""):
            out[key] = str(resolve_inside(root, spec[key], key))
    return out


def check_backend(value: Any, backends: Iterable[str] | None = None) -> str | None:
    """The job backend a spec names (``"backend"``), or None when it names none (the
    server's default). ``backends``: the names configured here (None: any known one,
    :data:`.backends.BACKEND_NAMES`). Raises SpecError: 400 for a value that is not a
    backend's name (naming the valid ones), 409 for a known backend that is not
    configured here (saying how to configure it)."""
    from .backends import BACKEND_NAMES

    if value in (None, ""):
        return None
    if not isinstance(value, str) or value not in BACKEND_NAMES:
        raise SpecError(f"backend: {shown(value)} is not a job backend; valid: {', '.join(BACKEND_NAMES)}", 400)
    if backends is not None and value not in backends:
        how = (
            " (set CvatTrainApp.ray_address, or CVAT_TRAIN_RAY_ADDRESS, to the Ray dashboard's URL)"
            if value == "ray"
            else ""
        )
        raise SpecError(
            f"backend: {value!r} is not configured here{how}; configured: {', '.join(sorted(backends))}",
            409,
        )
    return value


def check_spec(
    spec: Any,
    root: Path | str,
    *,
    runs_root: Path | str | None = None,
    allowed_endpoint_urls: Iterable[str] = (),
    backends: Iterable[str] | None = None,
) -> dict:
    """The spec to write to job.json for client spec ``spec``, paths resolved inside
    ``root``: the check of its kind in the registry (:mod:`.registry`; e.g.
    :func:`check_train`, :func:`check_sync`, :func:`check_annotate`), or
    :func:`check_path_fields` for a kind without one. ``runs_root`` and
    ``allowed_endpoint_urls`` reach the check as :class:`SpecOptions`; ``"backend"``
    (where the job runs, optional) is checked against ``backends`` by
    :func:`check_backend` and kept in the result. Raises SpecError
    (400 for a spec that is not an object or names an unknown kind)."""
    if not isinstance(spec, dict):
        raise SpecError("expected a JSON object {kind, ...}", 400)
    try:
        kind = get_kind(spec.get("kind") if isinstance(spec.get("kind"), str) else "")
    except KeyError as e:
        raise SpecError(f"kind: {e.args[0]}", 400) from None
    backend = check_backend(spec.get("backend"), None if backends is None else tuple(backends))
    spec = {k: v for k, v in spec.items() if k != "backend"}
    root = Path(root)
    check = kind.check_function()
    if check is None:
        out = check_path_fields(kind, spec, root)
    else:
        out = check(spec, root, SpecOptions(runs_root, tuple(allowed_endpoint_urls)))
    return {**out, "backend": backend} if backend else out
