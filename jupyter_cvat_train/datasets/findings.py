"""Findings of a validation, and the error for input that is no export at all.

A :class:`Finding` is one problem found in a CVAT export. ``severity`` is ``"error"``
(blocks training) or ``"warning"`` (training can go on). The codes and their default
severity and hint are listed in :data:`CODES`; the CLI, the HTTP API and the panel show
them as they are.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


class ExportError(Exception):
    """The input cannot be read as a CVAT export at all (not a zip or folder, a corrupt
    or unsafe archive, an annotation file that does not parse, no known layout).

    The message says what was found and what was expected; the CLI prints it and exits 2.
    """


@dataclass
class Finding:
    """One problem in an export.

    code: a stable id from :data:`CODES` (e.g. ``degenerate-box``).
    severity: ``"error"`` (blocks training) or ``"warning"``.
    message: what is wrong, in a sentence.
    item: the file or image it is about (path inside the export, or item id), or None
        for the export as a whole.
    hint: what to do about it.
    """

    code: str
    severity: str
    message: str
    item: str | None = None
    hint: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


# code -> (default severity, default hint)
CODES: dict[str, tuple[str, str]] = {
    "unreadable-export": (
        "error",
        "Give the path of a CVAT export: the .zip CVAT downloads (Export task / "
        "dataset, 'Save images' on) or the folder it extracts to.",
    ),
    "unsafe-archive-entry": (
        "error",
        "The zip holds an entry with an absolute path, '..' or a symlink; it was not "
        "extracted. Re-export from CVAT or re-zip the folder without it.",
    ),
    "unsafe-reference": (
        "error",
        "The export names a file outside itself (an absolute path, '..', a drive letter, "
        "or a symbolic link leading out); it was not read. Export again from CVAT, or fix the "
        "path so that it stays inside the export.",
    ),
    "special-file": (
        "error",
        "The export holds a FIFO, device file or socket; exports hold only regular files "
        "and folders. Remove it (or the link to it) from the export folder.",
    ),
    "annotation-file-too-large": (
        "error",
        "The annotation file is over the size limit; set "
        "CVAT_TRAIN_MAX_ANNOTATION_BYTES (bytes) higher if the file is genuine.",
    ),
    "image-too-large": (
        "error",
        "The image header declares more pixels than training can decode (a decompression "
        "bomb, or a scan that needs tiling). Replace it with a smaller image, or raise "
        "CVAT_TRAIN_MAX_IMAGE_PIXELS if it is genuine.",
    ),
    "missing-image": (
        "error",
        "Export again from CVAT with 'Save images' on, or put the image file at the path the annotation file names.",
    ),
    "unreadable-image": (
        "error",
        "The file is not a readable image (truncated or another format). Replace it "
        "with the original image or delete the item in CVAT.",
    ),
    "image-size-mismatch": (
        "error",
        "The image size differs from the size in the annotation file, so boxes "
        "would land in the wrong place. Re-export, or replace the image with the one "
        "that was annotated.",
    ),
    "undeclared-label": (
        "error",
        "The annotation uses a label the export does not declare. Add the label to the "
        "CVAT task (or fix the label id) and export again.",
    ),
    "unknown-image": (
        "error",
        "The annotation refers to an image id that the export does not list. Export again from CVAT.",
    ),
    "degenerate-box": (
        "warning",
        "The box has zero or negative width or height; training skips it. Fix or delete it in CVAT.",
    ),
    "box-out-of-bounds": (
        "warning",
        "The box reaches outside the image; training clips it to the image. Fix "
        "it in CVAT if the object is really elsewhere.",
    ),
    "duplicate-annotation": (
        "warning",
        "Two annotations on the same image have the same label and box. Delete one in CVAT.",
    ),
    "image-without-annotations": (
        "warning",
        "The image has no annotation; training uses it as background "
        "only. Annotate it or leave it as a negative example.",
    ),
    "label-without-annotations": (
        "warning",
        "The label is declared but never used; the model will never learn "
        "it. Annotate some objects or remove the label.",
    ),
    "few-annotations": (
        "warning",
        "Fewer than 100 annotations in total: a model will hardly learn from so few. Annotate more images.",
    ),
    "invalid-polygon": (
        "warning",
        "The polygon has fewer than 3 points, zero area or non-finite coordinates; "
        "its box is kept, the outline is dropped.",
    ),
    "yolo-class-out-of-range": (
        "error",
        "The class index is not a line of obj.names (indices start at 0). Fix "
        "the label file or add the class to obj.names.",
    ),
    "invalid-annotation": (
        "error",
        "The annotation file has an entry that cannot be read. Export again from CVAT or fix the entry.",
    ),
    "empty-export": (
        "error",
        "The export holds no images. In CVAT, export the task or project with its images ('Save images' on).",
    ),
    "no-labels": ("error", "The export declares no labels. Add labels to the CVAT task and export again."),
}


def finding(
    code: str, message: str, item: str | None = None, *, severity: str | None = None, hint: str | None = None
) -> Finding:
    """A :class:`Finding` with the default severity and hint of ``code`` (see :data:`CODES`)."""
    default_severity, default_hint = CODES.get(code, ("error", ""))
    return Finding(code, severity or default_severity, message, item, default_hint if hint is None else hint)
