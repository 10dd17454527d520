"""What the Auto-annotate dialog and the annotate job view need from the server: the work
behind the handlers of these routes (in :mod:`.handlers`).

Thin functions over the core, path-checked like the others (every client path resolves
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

import os
import stat
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from ..jobs.runtime.messages import shown
from ..jobs.specs import SpecError, resolve_inside

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


def _named(path: str, limit: int = 200) -> str:
    """A client's path as it is shown in a message: as typed, cut to ``limit`` characters."""
    return path if len(path) <= limit else path[: limit - 3] + "..."


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
            f"{_named(named)} is not a folder: choose a model folder (the model/ folder of a training "
            "job's output, with model.pt and classes.csv)",
            422,
        )
    csv_path = real / "classes.csv"
    try:
        size = csv_path.stat().st_size
    except FileNotFoundError:
        raise SpecError(
            f"{_named(named)} has no classes.csv, so it is not a trained model folder: choose the model/ "
            "folder of a training job's output, or add a classes.csv (header 'labels,id', one row per label)",
            422,
        ) from None
    if size > MAX_CLASSES_CSV_BYTES:
        raise SpecError(f"{_named(named)}/classes.csv is {size} bytes, more than a label list can be", 422)
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


def open_job_output_file(output_dir: Path, rel: str) -> tuple[BinaryIO, Path, int]:
    """Open the regular file ``rel`` (posix, relative) beneath ``output_dir`` for reading:
    (the open file, its real path, its size in bytes). The caller closes the file.

    The path is resolved (symlinks followed) and must stay beneath the real
    ``output_dir``; the file is then opened without following a last symlink, and, where
    the system tells (``/proc/self/fd``), what was opened is checked again, so a folder
    swapped for a symlink between the check and the open is refused too.

    Raises SpecError: 400 for an absolute path, ``..``, a NUL byte or an empty path; 404
    when it does not exist, is not a regular file, or leaves the output folder."""
    if not rel or "\0" in rel or rel.startswith("/") or ".." in PurePosixPath(rel).parts:
        raise SpecError(f"{shown(rel)}: give a path relative to the job's output folder, without '..'", 400)
    missing = SpecError(f"no file {shown(rel)} in the job's output folder", 404)
    base = os.path.realpath(output_dir)
    real = os.path.realpath(os.path.join(base, rel))
    if not real.startswith(base.rstrip("/") + "/"):
        raise missing
    try:
        fd = os.open(real, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        raise missing from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SpecError(f"{shown(rel)} in the job's output folder is not a file", 404)
        try:
            opened = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # no /proc: the realpath check above stands
            opened = real
        if not opened.startswith(base.rstrip("/") + "/"):
            raise missing
        return os.fdopen(fd, "rb"), Path(real), st.st_size
    except BaseException:
        os.close(fd)
        raise
