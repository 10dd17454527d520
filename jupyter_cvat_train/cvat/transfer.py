"""Moving data between a CVAT task and the workspace, through the CVAT SDK.

- :func:`pull`: a task's dataset export (a CVAT format, images included) downloaded to a
  temporary file beside the destination and renamed into place when complete, so a server
  that goes away mid-download leaves nothing half-written; then validated like any export.
- :func:`push`: annotations (an annotate job's output zip, or any export zip our readers
  read) into a task, as CVAT shapes: images matched to the task's frames by file name,
  labels by name; the shared labels are checked *before* anything is sent. Appended by
  default; ``replace`` puts them in place of the task's annotations (CVAT's "clean old
  annotations"). Returns a report of what was sent and what CVAT holds afterwards.
- :func:`auto_annotate`: a model folder run over a task's images by the SDK's own driver
  (``cvat_sdk.auto_annotation.annotate_task``, the code path of ``cvat-cli task
  auto-annotate``) with :mod:`.function`, the labels checked first.

Every function takes a logged-in SDK client (:func:`.connection.connect`) and the settings
it came from (for messages), and raises :class:`.connection.CvatError` with a clear message.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from ..jobs.runtime import JobCancelled
from .connection import CvatError, CvatSettings, describe_failure

#: our short format names -> CVAT's exporter / importer names
EXPORT_FORMATS = {
    "cvat": "CVAT for images 1.1",
    "coco": "COCO 1.0",
    "yolo": "YOLO 1.1",
    "voc": "PASCAL VOC 1.1",
    "labelme": "LabelMe 3.0",
    "mot": "MOT 1.1",
    "tfrecord": "TFRecord 1.0",
}
IMPORT_FORMATS = {"cvat": "CVAT 1.1", "coco": "COCO 1.0", "yolo": "YOLO 1.1"}


def cvat_format_name(name: str) -> str:
    """CVAT's format name for ``name`` (one of :data:`EXPORT_FORMATS`' keys, any case, or
    already a CVAT name, returned as it is)."""
    return EXPORT_FORMATS.get(name.strip().lower(), name.strip())


def get_task(client, task_id: int, settings: CvatSettings):
    """The task ``task_id``; CvatError when it does not exist or cannot be read."""
    try:
        return client.tasks.retrieve(int(task_id))
    except Exception as e:  # noqa: BLE001
        err = describe_failure(e, settings, f"reading task {task_id}")
        if getattr(e, "status", None) == 404:
            err = CvatError(
                f"task {task_id} does not exist on {settings.host} (or this user cannot see it): "
                f"check the id in the task's URL, /tasks/<id>"
            )
        raise err from None


def task_labels(task) -> list[str]:
    """The names of a task's labels (its project's, for a task in a project)."""
    return [label.name for label in task.get_labels()]


def shared_labels(model_or_source_labels: list[str], task_label_names: list[str], *, what: str, task_id) -> list[str]:
    """The labels in both lists (exact names, as CVAT's mapping matches them). Raises
    CvatError naming both label sets when there is none."""
    shared = [n for n in model_or_source_labels if n in set(task_label_names)]
    if not shared:
        raise CvatError(
            f"task {task_id} shares no label with {what}: the task has {', '.join(task_label_names) or 'no labels'}; "
            f"{what} has {', '.join(model_or_source_labels)}. Nothing was sent. Rename the labels on one side "
            f"(names must match exactly)"
        )
    return shared


def _export_formats(client) -> dict[str, bool]:
    formats, _ = client.api_client.server_api.retrieve_annotation_formats()
    return {f.name: bool(getattr(f, "enabled", True)) for f in formats.exporters}


def pull(
    client,
    settings: CvatSettings,
    task_id: int,
    out: Path | str,
    *,
    format: str = "cvat",
    include_images: bool = True,
    overwrite: bool = False,
    validate: bool = True,
    pbar=None,
) -> dict:
    """Export task ``task_id`` in ``format`` (ours, e.g. ``cvat``, or CVAT's name) into the
    zip ``out``, then validate it (:func:`..datasets.validate_export`).

    The download goes to ``.<name>.partial-*`` in the destination folder and is renamed to
    ``out`` only when complete: on any failure (server gone, refused format) nothing is
    left behind. Refuses an existing ``out`` without ``overwrite``. Returns {"output",
    "task", "format", "bytes", "validation": {"ok", "errors", "warnings", "images",
    "annotations"} or None}.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise CvatError(f"{out} already exists: choose another name or pass overwrite")
    if out.suffix.lower() != ".zip":
        raise CvatError(f"{out}: the export is a zip; name the output '*.zip'")
    fmt = cvat_format_name(format)
    task = get_task(client, task_id, settings)
    try:
        exporters = _export_formats(client)
    except Exception as e:  # noqa: BLE001
        raise describe_failure(e, settings, "listing the export formats") from None
    if fmt not in exporters or not exporters[fmt]:
        ours = ", ".join(f"{k} ({v})" for k, v in EXPORT_FORMATS.items() if exporters.get(v))
        raise CvatError(f"CVAT at {settings.host} has no export format {fmt!r}: choose one of {ours}")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.partial-", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        task.export_dataset(fmt, tmp, include_images=include_images, pbar=pbar)
        size = tmp.stat().st_size
        os.replace(tmp, out)
    except JobCancelled:
        tmp.unlink(missing_ok=True)
        raise
    except Exception as e:  # noqa: BLE001 - server gone, refused export, disk full
        tmp.unlink(missing_ok=True)
        err = describe_failure(e, settings, f"the export of task {task_id} as {fmt!r}")
        raise CvatError(f"{err} (nothing was written to {out})") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    result = {"output": str(out), "task": int(task_id), "task_name": task.name, "format": fmt, "bytes": size}
    result["validation"] = None
    if validate:
        from ..datasets import validate_export

        report = validate_export(out)
        ds = report.dataset
        result["validation"] = {
            "ok": report.ok,
            "errors": len(report.errors),
            "warnings": len(report.warnings),
            "images": len(ds.items) if ds else 0,
            "annotations": ds.annotation_count if ds else 0,
            "labels": list(ds.labels) if ds else [],
        }
    return result


def find_annotations(source: Path | str) -> tuple[Path, str | None]:
    """(zip, our format id or None to detect) for a push: an annotate job folder (its
    output zip and format from ``output/*.summary.json``, or ``output/annotations.zip``), or
    a zip. Raises CvatError when there is nothing to push."""
    import json

    source = Path(source)
    if source.is_file():
        return source, None
    if source.is_dir():
        for summary in sorted((source / "output").glob("*.summary.json")):
            try:
                s = json.loads(summary.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if s.get("partial"):
                continue
            path = Path(s.get("output", ""))
            if path.is_file():
                return path, s.get("format")
        z = source / "output" / "annotations.zip"
        if z.is_file():
            return z, None
        raise CvatError(
            f"{source} holds no finished annotate output (output/annotations.zip): give an annotate job's "
            f"folder or the zip itself"
        )
    raise CvatError(f"{source} not found: give an annotate job's folder or an annotations zip")


def _frame_index(frames: list[str]) -> Callable[[str, str], int | None]:
    by_name, by_base, by_stem = {}, {}, {}
    for i, name in enumerate(frames):
        p = PurePosixPath(name)
        by_name[name] = i
        by_base.setdefault(p.name, []).append(i)
        by_stem.setdefault(p.stem, []).append(i)

    def find(name: str, stem: str) -> int | None:
        if name in by_name:
            return by_name[name]
        for table, key in ((by_base, PurePosixPath(name).name), (by_stem, stem)):
            hits = table.get(key, [])
            if len(hits) == 1:
                return hits[0]
        return None

    return find


def build_shapes(dataset, frames: list[str], label_ids: dict[str, int]) -> tuple[list, dict]:
    """CVAT ``LabeledShapeRequest``s for the annotations of ``dataset`` (a loaded export)
    on the task's ``frames`` (frame names in frame order), for labels in ``label_ids``
    (name -> task label id): a polygon per annotation that has one, else a rectangle;
    source "auto". Returns (shapes, report {"images_matched", "images_unmatched": [...],
    "counts": {label: n}, "skipped_labels": {label: n}})."""
    import cvat_sdk.models as models

    find = _frame_index(frames)
    shapes, unmatched = [], []
    counts: dict[str, int] = {}
    skipped: dict[str, int] = {}
    matched = 0
    for item in dataset.items:
        name = PurePosixPath(str(item.image_path)).name if item.image_path else item.id
        frame = find(name, item.id)
        if frame is None:
            unmatched.append(name)
            continue
        matched += 1
        for a in item.annotations:
            if a.label not in label_ids:
                skipped[a.label] = skipped.get(a.label, 0) + 1
                continue
            if a.polygons and len(a.polygons[0]) >= 6:
                kind, points = "polygon", [float(v) for v in a.polygons[0]]
            else:
                x1, y1, x2, y2 = (float(v) for v in a.bbox)
                if x2 <= x1 or y2 <= y1:
                    continue
                kind, points = "rectangle", [x1, y1, x2, y2]
            shapes.append(
                models.LabeledShapeRequest(
                    type=kind, frame=frame, label_id=label_ids[a.label], points=points, source="auto"
                )
            )
            counts[a.label] = counts.get(a.label, 0) + 1
    report = {
        "images_matched": matched,
        "images_unmatched": unmatched,
        "counts": counts,
        "skipped_labels": skipped,
    }
    return shapes, report


def load_annotations(zip_path: Path, fmt: str | None = None):
    """The export ``zip_path`` as a Dataset (:func:`..datasets.load_export`), also when it
    holds annotations without images: CVAT XML (Datumaro's reader looks for each image
    file) is read from a temporary copy of its XML with empty placeholder images. Raises
    CvatError when it cannot be read."""
    import shutil
    import xml.etree.ElementTree as ET

    from ..datasets import load_export
    from ..datasets.archive import open_export
    from ..datasets.findings import ExportError

    try:
        return load_export(zip_path, fmt)
    except ExportError as e:
        first = e
    try:
        root, _ = open_export(zip_path)
        xmls = sorted(p for p in Path(root).rglob("*.xml") if p.is_file())
        if not xmls or "Cannot find an image" not in str(first):
            raise first
        with tempfile.TemporaryDirectory(prefix="cvat-push-") as tmp:
            for x in xmls:
                rel = x.relative_to(root)
                (Path(tmp) / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(x, Path(tmp) / rel)
                for image in ET.parse(x).getroot().iter("image"):
                    name = PurePosixPath(image.get("name") or "")
                    if not name.name or name.is_absolute() or ".." in name.parts:
                        continue
                    placeholder = Path(tmp) / rel.parent / "images" / name
                    placeholder.parent.mkdir(parents=True, exist_ok=True)
                    placeholder.touch()
            return load_export(tmp, fmt)
    except (ExportError, ET.ParseError, OSError) as e:
        raise CvatError(f"{zip_path} cannot be read as annotations: {e}") from None


def push(client, settings: CvatSettings, source: Path | str, task_id: int, *, replace: bool = False) -> dict:
    """Send the annotations of ``source`` (annotate job folder or zip) to task ``task_id``.

    Checks before anything is sent: the zip reads as an export; the task exists; the
    labels shared by the zip and the task (none: CvatError naming both sets); the images
    matched to the task's frames by name (none: CvatError). ``replace``: the task's
    annotations are replaced (PUT), else added to (PATCH create). Returns {"task",
    "source", "replace", "sent", "counts", "skipped_labels", "images_matched",
    "images_unmatched", "task_shapes_after"}.
    """
    zip_path, fmt = find_annotations(source)
    ds = load_annotations(zip_path, fmt)
    task = get_task(client, task_id, settings)
    try:
        labels = {label.name: label.id for label in task.get_labels()}
        frames = [f.name for f in task.get_frames_info()]
    except Exception as e:  # noqa: BLE001
        raise describe_failure(e, settings, f"reading task {task_id}'s labels and frames") from None
    source_labels = list(ds.labels) or sorted({a.label for it in ds.items for a in it.annotations})
    shared = shared_labels(source_labels, list(labels), what=f"the annotations in {zip_path.name}", task_id=task_id)
    shapes, report = build_shapes(ds, frames, {n: labels[n] for n in shared})
    if report["images_matched"] == 0 and ds.items:
        raise CvatError(
            f"none of the {len(ds.items)} images in {zip_path.name} is a frame of task {task_id} "
            f"(matched by file name): nothing was sent"
        )
    import cvat_sdk.models as models

    try:
        if replace:
            client.tasks.api.update_annotations(
                task.id, labeled_data_request=models.LabeledDataRequest(tags=[], shapes=shapes, tracks=[])
            )
        else:
            client.tasks.api.partial_update_annotations(
                "create", task.id, patched_labeled_data_request=models.PatchedLabeledDataRequest(shapes=shapes)
            )
        after = task.get_annotations()
    except Exception as e:  # noqa: BLE001
        raise describe_failure(e, settings, f"the upload of {len(shapes)} shapes to task {task_id}") from None
    return {
        "task": int(task_id),
        "source": str(zip_path),
        "replace": replace,
        "sent": len(shapes),
        **report,
        "task_shapes_after": len(after.shapes),
    }


def auto_annotate(
    client,
    settings: CvatSettings,
    task_id: int,
    model_dir: Path | str,
    *,
    threshold: float | None = None,
    replace: bool = False,
    device: str = "auto",
    pbar=None,
) -> dict:
    """Run the model folder over task ``task_id``'s images on this machine and upload the
    shapes (the SDK's ``annotate_task``, as ``cvat-cli task auto-annotate``). The labels
    shared by the model and the task are checked first (none: CvatError, nothing sent);
    the model's other labels are left out. ``threshold``: CVAT's confidence threshold
    (None: the function's default, 0.5). ``replace``: clear the task's annotations.
    Returns {"task", "model_dir", "labels", "task_shapes_after"}."""
    import cvat_sdk.auto_annotation as cvataa

    from .function import ModelFunction

    task = get_task(client, task_id, settings)
    try:
        names = task_labels(task)
    except Exception as e:  # noqa: BLE001
        raise describe_failure(e, settings, f"reading task {task_id}'s labels") from None
    from ..models.classes import ClassesError, read_classes_csv

    try:
        model_labels = read_classes_csv(Path(model_dir) / "classes.csv")
    except ClassesError as e:
        raise CvatError(str(e)) from None
    shared = shared_labels(model_labels, names, what=f"the model in {model_dir}", task_id=task_id)
    fn = ModelFunction(model_dir, device=device)
    try:
        cvataa.annotate_task(
            client,
            task.id,
            fn,
            pbar=pbar,
            clear_existing=replace,
            allow_unmatched_labels=True,
            conf_threshold=threshold,
        )
        after = task.get_annotations()
    except JobCancelled:
        raise
    except cvataa.BadFunctionError as e:
        raise CvatError(f"task {task_id} does not accept the model's shapes: {e}") from None
    except Exception as e:  # noqa: BLE001
        raise describe_failure(e, settings, f"the auto-annotation of task {task_id}") from None
    return {
        "task": int(task_id),
        "model_dir": str(model_dir),
        "labels": shared,
        "task_shapes_after": len(after.shapes),
    }
