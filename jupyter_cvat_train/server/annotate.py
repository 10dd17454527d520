"""What the Auto-annotate dialog and the annotate job view need from the server.

Thin handlers over the core, path-checked like the others (every client path resolves
inside the server root, :func:`~jupyter_cvat_train.jobs.specs.resolve_inside`)::

    GET models/labels?path=P        {"path", "labels"}: the labels of the model folder P
                                    (its classes.csv, ids 1..N in order); 422 when the
                                    folder has no readable classes.csv
    GET annotate/images?path=P      {"path", "kind", "images", "labels", "format"}: what an
                                    annotate job would find at P (a folder or zip of images,
                                    or a CVAT export and its labels); 422 when it holds no image
    GET jobs/{id}/files/{path}      a file beneath the job's output/ folder (the previews and
                                    the annotation zip of an annotate job), with its content type

Trust model: the job folders lie in the runs root, which Contents API users can write. So a
file is served only when its real path (symlinks resolved) is a regular file beneath the
real output/ folder of that job; only a few content types are sent as such (PNG, JPEG,
JSON, text), everything else as an attachment of type application/octet-stream, always
with ``X-Content-Type-Options: nosniff`` and a sandboxing Content-Security-Policy, so a
planted HTML or SVG file is never rendered in the Jupyter origin.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path, PurePosixPath

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..jobs.runtime.messages import shown
from ..jobs.specs import SpecError, resolve_inside
from .handlers import ApiError, ApiHandler, spec_error

#: A classes.csv longer than this is refused (a model has at most a few thousand labels).
MAX_CLASSES_CSV_BYTES = 1024 * 1024
#: Bytes per chunk when a file is sent.
CHUNK = 256 * 1024
#: Extensions served with their own type, shown inline; anything else is a download.
INLINE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
    ".log": "text/plain; charset=utf-8",
    ".csv": "text/plain; charset=utf-8",
}
DOWNLOAD_TYPES = {".zip": "application/zip"}


def model_labels(root: Path, path) -> dict:
    """``{"path", "labels"}`` of the model folder ``path`` (relative to ``root``).

    Raises SpecError: 400/403/404 for the path (:func:`resolve_inside`), 422 when it is
    not a folder, has no classes.csv, or its classes.csv is unreadable or over
    :data:`MAX_CLASSES_CSV_BYTES` bytes."""
    from ..models.classes import ClassesError, read_classes_csv

    real = resolve_inside(root, path, "path")
    named = str(path).strip().rstrip("/")
    if not real.is_dir():
        raise SpecError(
            f"{shown(named)} is not a folder: choose a model folder (the model/ folder of a training "
            "job's output, with model.pt and classes.csv)",
            422,
        )
    csv_path = real / "classes.csv"
    try:
        size = csv_path.stat().st_size
    except FileNotFoundError:
        raise SpecError(
            f"{shown(named)} has no classes.csv, so it is not a trained model folder: choose the model/ "
            "folder of a training job's output, or add a classes.csv (header 'labels,id', one row per label)",
            422,
        ) from None
    if size > MAX_CLASSES_CSV_BYTES:
        raise SpecError(f"{shown(named)}/classes.csv is {size} bytes, more than a label list can be", 422)
    try:
        labels = read_classes_csv(csv_path)
    except (ClassesError, UnicodeDecodeError, OSError) as e:
        raise SpecError(str(e).replace(str(csv_path), f"{named}/classes.csv"), 422) from None
    return {"path": named, "labels": labels}


def annotate_images(root: Path, path) -> dict:
    """``{"path", "kind", "images", "labels", "format"}``: what an annotate job finds at
    ``path`` (:func:`jupyter_cvat_train.annotate.inputs.open_input`). Heavy for an export
    (it is loaded): run it in the validation pool. Raises SpecError (422 for a path that
    holds no image, is not a folder or zip, or an export that cannot be loaded)."""
    from ..annotate.inputs import InputError, open_input

    real = resolve_inside(root, path, "path")
    named = str(path).strip().rstrip("/")
    try:
        found = open_input(real)
    except InputError as e:
        raise SpecError(str(e).replace(str(real), named), 422) from None
    return {
        "path": named,
        "kind": found.kind,
        "images": len(found.images),
        "labels": found.labels,
        "format": found.export_format,
    }


class ModelLabelsHandler(ApiHandler):
    """``GET models/labels?path=P`` → ``{"path", "labels"}``."""

    @web.authenticated
    @authorized
    async def get(self):
        try:
            reply = await self.service.run(model_labels, self.service.root_dir, self.get_query_argument("path", ""))
        except SpecError as e:
            raise spec_error(e) from None
        self.finish(json.dumps(reply))


class AnnotateImagesHandler(ApiHandler):
    """``GET annotate/images?path=P`` → ``{"path", "kind", "images", "labels", "format"}``."""

    @web.authenticated
    @authorized
    async def get(self):
        try:
            reply = await self.heavy(annotate_images, self.service.root_dir, self.get_query_argument("path", ""))
        except SpecError as e:
            raise spec_error(e) from None
        self.finish(json.dumps(reply))


def job_output_file(output_dir: Path, rel: str) -> tuple[Path, int]:
    """The regular file ``rel`` (posix, relative) beneath ``output_dir``, and its size.

    Raises ApiError: 400 for an absolute path, ``..``, a NUL byte or an empty path; 404
    when it does not exist, is not a regular file, or its real path leaves the real
    ``output_dir`` (a symlink out)."""
    if not rel or "\0" in rel or rel.startswith("/") or ".." in PurePosixPath(rel).parts:
        raise ApiError(400, f"{shown(rel)}: give a path relative to the job's output folder, without '..'")
    base = os.path.realpath(output_dir)
    real = os.path.realpath(os.path.join(base, rel))
    if not real.startswith(base.rstrip("/") + "/"):
        raise ApiError(404, f"no file {shown(rel)} in the job's output folder")
    try:
        st = os.stat(real)
    except OSError:
        raise ApiError(404, f"no file {shown(rel)} in the job's output folder") from None
    if not stat.S_ISREG(st.st_mode):
        raise ApiError(404, f"{shown(rel)} in the job's output folder is not a file")
    return Path(real), st.st_size


class JobFileHandler(ApiHandler):
    """``GET jobs/{id}/files/{path}``: a file beneath the job's output/ folder (see the
    module docstring for what is served how)."""

    @web.authenticated
    @authorized
    async def get(self, job_id, path):
        await self.job(job_id)
        output_dir = self.service.manager.job_dir(job_id).output_dir
        real, size = await self.service.run(job_output_file, output_dir, path)
        suffix = real.suffix.lower()
        inline = INLINE_TYPES.get(suffix)
        self.set_header("Content-Type", inline or DOWNLOAD_TYPES.get(suffix, "application/octet-stream"))
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Content-Security-Policy", "sandbox; default-src 'none'")
        self.set_header("Cache-Control", "no-cache")
        if not inline or self.get_query_argument("download", "") in ("1", "true"):
            name = real.name.replace('"', "_").encode("ascii", "replace").decode()
            self.set_header("Content-Disposition", f'attachment; filename="{name}"')

        def read(f, n):
            return f.read(n)

        f = await self.service.run(open, real, "rb")
        try:
            left = size
            while left > 0:
                data = await self.service.run(read, f, min(CHUNK, left))
                if not data:
                    break
                left -= len(data)
                self.write(data)
                await self.flush()
        finally:
            f.close()
        self.finish()


def annotate_routes(job_id: str) -> list[tuple[str, type]]:
    """The routes above, relative to ``{base_url}cvat-train/api/`` (``job_id``: the job id pattern)."""
    return [
        (r"models/labels", ModelLabelsHandler),
        (r"annotate/images", AnnotateImagesHandler),
        (rf"jobs/{job_id}/files/(?P<path>.+)", JobFileHandler),
    ]
