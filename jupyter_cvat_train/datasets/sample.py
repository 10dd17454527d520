"""A sample CVAT export of simple shapes, for the demo, the tests and the benchmarks.

Real JPEG images (default 320x240) of circles (red), squares (blue) and triangles (green)
on noisy, textured backgrounds, written in the layout CVAT exports:

- ``coco``: written here (``annotations/instances_default.json``, ``images/default/``),
  each object with its bbox and its polygon (``segmentation``), as CVAT's COCO 1.0.
- ``cvat``, ``labelme``: polygons; ``voc``, ``yolo``, ``mot``: boxes (these formats hold
  no polygons) — written by Datumaro's exporters, the ones CVAT uses.

Objects are large (about 10-30 % of the image side) and their colors differ clearly, so a
detector trained from scratch on CPU learns them in a few minutes. The same seed gives
the same bytes (fixed zip timestamps), so a zip's content hash is stable.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ..fileio import atomic_write_with
from .formats.coco import coco_document
from .model import Annotation

LABELS = ["circle", "square", "triangle"]
COLORS = {"circle": (215, 40, 40), "square": (40, 70, 215), "triangle": (40, 185, 60)}
SAMPLE_FORMATS = ("coco", "cvat", "voc", "yolo", "labelme", "mot")
_MARKER = ".cvat-train-sample"
_ZIP_COMMENT = b"cvat-train sample-dataset"
_ZIP_TIME = (2020, 1, 1, 0, 0, 0)


def _background(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """A smooth random color field, plus stripes and pixel noise, as uint8 RGB."""
    coarse = rng.integers(60, 200, size=(4, 5, 3)).astype(np.uint8)
    img = Image.fromarray(coarse).resize((width, height), Image.BICUBIC)
    arr = np.asarray(img, dtype=np.float32)
    yy, xx = np.mgrid[0:height, 0:width]
    angle, freq = rng.uniform(0, math.pi), rng.uniform(0.05, 0.2)
    arr += 12 * np.sin(freq * (xx * math.cos(angle) + yy * math.sin(angle)))[..., None]
    arr += rng.normal(0, 14, size=arr.shape)
    # desaturate so the shapes' pure colors stand out
    gray = arr.mean(axis=2, keepdims=True)
    arr = 0.55 * gray + 0.45 * arr
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def _shape(rng: np.random.Generator, label: str, width: int, height: int) -> list[float]:
    """A polygon (flat xy list, pixels) of ``label`` at a random place inside the image."""
    side = min(width, height)
    if label == "circle":
        r = rng.uniform(0.10, 0.18) * side
        cx, cy = rng.uniform(r + 2, width - r - 2), rng.uniform(r + 2, height - r - 2)
        pts = [(cx + r * math.cos(t), cy + r * math.sin(t)) for t in np.linspace(0, 2 * math.pi, 32, endpoint=False)]
    elif label == "square":
        s = rng.uniform(0.18, 0.32) * side
        x, y = rng.uniform(2, width - s - 2), rng.uniform(2, height - s - 2)
        pts = [(x, y), (x + s, y), (x + s, y + s), (x, y + s)]
    else:
        s = rng.uniform(0.22, 0.36) * side
        x, y = rng.uniform(2, width - s - 2), rng.uniform(2, height - s * 0.87 - 2)
        pts = [(x + s / 2, y), (x + s, y + s * 0.87), (x, y + s * 0.87)]
    return [round(float(v), 2) for p in pts for v in p]


def _bbox(poly: list[float]) -> tuple[float, float, float, float]:
    xs, ys = poly[0::2], poly[1::2]
    return min(xs), min(ys), max(xs), max(ys)


def _apart(a, b, gap: float = 4.0) -> bool:
    """True when boxes a and b (xyxy) are at least ``gap`` pixels apart on some axis."""
    return a[2] + gap <= b[0] or b[2] + gap <= a[0] or a[3] + gap <= b[1] or b[3] + gap <= a[1]


def draw_sample(rng: np.random.Generator, width: int, height: int, max_objects: int = 4):
    """One image and its objects: (PIL image, [(label, polygon), ...])."""
    img = _background(rng, width, height)
    draw = ImageDraw.Draw(img)
    objects: list[tuple[str, list[float]]] = []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        label = LABELS[int(rng.integers(len(LABELS)))]
        for _attempt in range(20):
            poly = _shape(rng, label, width, height)
            if all(_apart(_bbox(poly), _bbox(p)) for _, p in objects):
                break
        else:
            continue
        base = np.array(COLORS[label]) + rng.integers(-25, 26, size=3)
        draw.polygon(
            [(poly[i], poly[i + 1]) for i in range(0, len(poly), 2)],
            fill=tuple(int(v) for v in np.clip(base, 0, 255)),
            outline=tuple(int(v) for v in np.clip(base * 0.6, 0, 255)),
        )
        objects.append((label, poly))
    img = img.filter(ImageFilter.GaussianBlur(0.6))
    return img, objects


def write_coco_sample(
    folder: Path, images: int, seed: int, width: int, height: int, subset: str = "default", max_objects: int = 4
) -> Path:
    """Write a COCO 1.0 export (CVAT layout) of ``images`` sample images into ``folder``."""
    rng = np.random.default_rng(seed)
    img_dir = folder / "images" / subset
    img_dir.mkdir(parents=True, exist_ok=True)
    (folder / "annotations").mkdir(parents=True, exist_ok=True)
    entries = []
    for i in range(images):
        img, objects = draw_sample(rng, width, height, max_objects)
        name = f"shapes_{i:05d}.jpg"
        img.save(img_dir / name, quality=90)
        entries.append(
            (
                name,
                width,
                height,
                [Annotation(label, _bbox(poly), [poly], {"occluded": False}) for label, poly in objects],
            )
        )
    coco = coco_document(entries, LABELS, description="cvat-train sample-dataset")
    (folder / "annotations" / f"instances_{subset}.json").write_text(json.dumps(coco))
    return folder


def _convert(coco_dir: Path, out_dir: Path, format: str) -> None:
    """Re-export the COCO sample in ``format`` with Datumaro's exporter (CVAT's own)."""
    import datumaro as dm

    from .formats.coco import load

    ds, _ = load(coco_dir)
    categories = {dm.AnnotationType.label: dm.LabelCategories.from_iterable(ds.labels)}
    polygons = format in ("cvat", "labelme")
    items = []
    for frame, it in enumerate(ds.items):
        anns = []
        for a in it.annotations:
            label = ds.labels.index(a.label)
            if polygons:
                anns.append(dm.Polygon(a.polygons[0], label=label, attributes={"occluded": False}))
            else:
                x1, y1, x2, y2 = a.bbox
                attrs = {"occluded": False}
                if format == "mot":
                    attrs.update(track_id=len(anns) + 1, visibility=1.0)
                anns.append(dm.Bbox(x1, y1, x2 - x1, y2 - y1, label=label, attributes=attrs))
        media = dm.Image.from_file(path=str(it.image_path), size=(it.height, it.width))
        attributes = {"frame": frame} if format in ("cvat", "mot") else {}
        items.append(dm.DatasetItem(id=it.id, subset=it.subset, media=media, annotations=anns, attributes=attributes))
    dmds = dm.Dataset.from_iterable(items, categories=categories, media_type=dm.Image)
    exporter = {"cvat": "cvat", "voc": "voc", "yolo": "yolo", "labelme": "label_me", "mot": "mot_seq_gt"}[format]
    extra = {"label_map": "source"} if format == "voc" else {}
    dmds.export(str(out_dir), exporter, save_media=True, **extra)


def _zip_folder(folder: Path, out: Path) -> None:
    def write(tmp: Path) -> None:
        with zipfile.ZipFile(tmp, "w") as zf:
            zf.comment = _ZIP_COMMENT
            for p in sorted(folder.rglob("*")):
                if p.is_file() and p.name != _MARKER:
                    info = zipfile.ZipInfo(p.relative_to(folder).as_posix(), _ZIP_TIME)
                    info.compress_type = (
                        zipfile.ZIP_STORED if p.suffix.lower() in (".jpg", ".png") else zipfile.ZIP_DEFLATED
                    )
                    info.external_attr = 0o644 << 16
                    zf.writestr(info, p.read_bytes())

    atomic_write_with(out, write)


def _check_free(out: Path) -> None:
    """Refuse to overwrite anything that is not an earlier sample (never lose data)."""
    if not out.exists():
        return
    if out.is_dir():
        if any(out.iterdir()) and not (out / _MARKER).exists():
            raise FileExistsError(f"{out} exists and is not empty: choose a new folder for the sample export")
        shutil.rmtree(out)
    else:
        try:
            with zipfile.ZipFile(out) as zf:
                ours = zf.comment == _ZIP_COMMENT
        except (zipfile.BadZipFile, OSError):
            ours = False
        if not ours:
            raise FileExistsError(f"{out} exists and is not a sample export: choose a new file name")


def generate_sample(
    out: str | Path,
    format: str = "coco",
    images: int = 200,
    seed: int = 0,
    *,
    width: int = 320,
    height: int = 240,
    max_objects: int = 4,
) -> Path:
    """Write a sample CVAT export of ``images`` JPEG images of shapes to ``out``.

    out: a folder, or a ``.zip`` file (then the export is zipped, as CVAT downloads it).
    format: one of :data:`SAMPLE_FORMATS`. seed: the same seed gives the same export.
    width, height: image size in pixels. max_objects: 1..max_objects shapes per image.
    Labels, in order: circle, square, triangle. Returns ``out``.
    Raises FileExistsError when ``out`` exists and is not an earlier sample; ValueError
    for an unknown format.
    """
    out = Path(out)
    if format not in SAMPLE_FORMATS:
        raise ValueError(f"unknown sample format {format!r}; expected one of {', '.join(SAMPLE_FORMATS)}")
    _check_free(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".sample-", dir=out.parent) as tmp:
        coco_dir = Path(tmp) / "coco"
        write_coco_sample(coco_dir, images, seed, width, height, max_objects=max_objects)
        folder = coco_dir
        if format != "coco":
            folder = Path(tmp) / format
            _convert(coco_dir, folder, format)
        if out.suffix.lower() == ".zip":
            _zip_folder(folder, out)
        else:
            (folder / _MARKER).write_text("written by cvat-train sample-dataset; may be overwritten by it\n")
            shutil.move(str(folder), str(out))
    return out
