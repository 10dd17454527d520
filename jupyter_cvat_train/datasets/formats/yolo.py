"""YOLO 1.1 as CVAT exports it — our own reader.

Why not Datumaro here: its YOLO importer hands its subsets a fresh error context, so
one class index out of range aborts the whole import (Datumaro 1.13) instead of being
reported for its item; a validator must name every such line.

Layout (darknet convention, CVAT "YOLO 1.1"): ``obj.data`` (``classes = N``, ``names =
data/obj.names``, ``train = data/train.txt``, optional ``valid =``), ``obj.names`` (one
label per line, index 0 first), the subset lists (one image path per line, relative to
the export as ``data/...``) and ``obj_<subset>_data/<image>`` with ``<image stem>.txt``
beside it: one ``class x_center y_center width height`` line per box, normalized to [0, 1].
Image sizes (which YOLO does not store) are read from the image headers.
"""

from __future__ import annotations

from pathlib import Path

from ..findings import ExportError, Finding, finding
from ..imagefiles import IMAGE_EXTENSIONS, image_sizes
from ..model import Annotation, Dataset, Item
from ..references import ExportRoot, read_annotation_file, unsafe_reference


def _text(path: Path, rel: str) -> str:
    return read_annotation_file(path, rel).decode("utf-8", errors="replace")


def _read_obj_data(root: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    path = root / "obj.data"
    if path.is_file():
        for line in _text(path, "obj.data").splitlines():
            key, sep, value = line.partition("=")
            if sep:
                out[key.strip()] = value.strip()
    return out


def _local(export: ExportRoot, ref: str) -> Path | None:
    """A path from obj.data / a subset list (``data/...`` in darknet), checked to resolve
    inside the export; None when it does not."""
    ref = ref.replace("\\", "/")
    if ref.startswith("data/"):
        ref = ref[5:]
    return export.resolve(ref)


def load(root: Path) -> tuple[Dataset, list[Finding]]:
    """Read a YOLO 1.1 export in folder ``root``. Raises ExportError without obj.names.
    A path in obj.data or a subset list that does not resolve inside the export is an
    ``unsafe-reference`` finding, and is not read."""
    export = ExportRoot(root)
    findings: list[Finding] = []
    meta = _read_obj_data(root)
    names_path = _local(export, meta.get("names", "obj.names"))
    if names_path is None:
        findings.append(unsafe_reference("obj.data", "names", meta.get("names")))
    if names_path is None or export.kind(names_path) != "file":
        names_path = root / "obj.names"
    if not names_path.is_file():
        raise ExportError(
            f"{root} has no obj.names: not a YOLO 1.1 export (expected obj.data, obj.names, "
            "train.txt and obj_train_data/)"
        )
    labels = [ln.strip() for ln in _text(names_path, export.relative(names_path)).splitlines() if ln.strip()]
    subsets: dict[str, list[Path]] = {}
    for key in ("train", "valid", "test"):
        if key in meta:
            lst = _local(export, meta[key])
            if lst is None:
                findings.append(unsafe_reference("obj.data", key, meta[key]))
                continue
            if export.kind(lst) == "file":
                lst_rel = export.relative(lst)
                paths = []
                for n, line in enumerate(_text(lst, lst_rel).splitlines(), 1):
                    if not line.strip():
                        continue
                    path = _local(export, line.strip())
                    if path is None:
                        findings.append(unsafe_reference(f"{lst_rel} line {n}", "image path", line.strip()))
                    else:
                        paths.append(path)
                subsets[lst.stem] = paths
            else:
                findings.append(
                    finding(
                        "invalid-annotation",
                        f"obj.data names {meta[key]} as the {key} list, but it is not in the export",
                        "obj.data",
                    )
                )
    if not subsets:  # no lists: every obj_<subset>_data folder
        for folder in sorted(root.glob("obj_*_data")):
            subsets[folder.name[4:-5]] = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    items: list[Item] = []
    for subset, paths in subsets.items():
        present = [export.kind(p) == "file" for p in paths]
        sizes = image_sizes([p if ok else None for p, ok in zip(paths, present)])
        for path, ok, size in zip(paths, present, sizes):
            rel = export.relative(path)
            item = Item(id=path.stem, image_path=path if ok else None, width=None, height=None, subset=subset)
            items.append(item)
            txt = export.contains(path.with_suffix(".txt"))
            if txt is None or export.kind(txt) != "file":
                continue  # no label file: an image without objects
            txt_rel = export.relative(txt)
            for n, line in enumerate(_text(txt, txt_rel).splitlines(), 1):
                parts = line.split()
                if not parts:
                    continue
                where = f"{txt_rel} line {n}"
                try:
                    cls = int(parts[0])
                    xc, yc, w, h = (float(v) for v in parts[1:5])
                    if len(parts) != 5:
                        raise ValueError
                except ValueError:
                    findings.append(
                        finding(
                            "invalid-annotation",
                            f"{where}: {line.strip()!r} is not 'class x_center y_center width height'",
                            rel,
                        )
                    )
                    continue
                if not 0 <= cls < len(labels):
                    findings.append(
                        finding(
                            "yolo-class-out-of-range",
                            f"{where}: class index {cls} is not in "
                            f"obj.names ({len(labels)} labels, indices 0..{len(labels) - 1})",
                            rel,
                        )
                    )
                    continue
                if size is None:
                    continue  # missing / unreadable image: reported by the checks, boxes cannot be placed
                iw, ih = size
                item.annotations.append(
                    Annotation(
                        labels[cls], ((xc - w / 2) * iw, (yc - h / 2) * ih, (xc + w / 2) * iw, (yc + h / 2) * ih)
                    )
                )
    return Dataset(format="yolo", root=root, labels=labels, items=items), findings
