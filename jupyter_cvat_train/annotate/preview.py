"""Preview PNGs: an image with its predicted boxes / polygons and labels drawn on it."""

from __future__ import annotations

import colorsys
import re
from pathlib import Path

from ..datasets.model import Annotation

MAX_SIDE = 1024


def label_color(index: int) -> tuple[int, int, int]:
    """A distinct, saturated RGB color for label ``index`` (golden-ratio hue steps)."""
    r, g, b = colorsys.hsv_to_rgb((index * 0.618033988749895) % 1.0, 0.85, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def render_preview(image, annotations: list[Annotation], labels: list[str], out: Path) -> Path:
    """Draw ``annotations`` (image pixels) on ``image`` (a PIL image at its original
    size), downscaled so that its longer side is at most 1024 px, and save a PNG at ``out``."""
    from PIL import ImageDraw

    im = image.convert("RGB")
    scale = min(1.0, MAX_SIDE / max(im.size))
    if scale < 1.0:
        im = im.resize((round(im.width * scale), round(im.height * scale)))
    draw = ImageDraw.Draw(im)
    index = {n: i for i, n in enumerate(labels)}
    for a in annotations:
        color = label_color(index.get(a.label, 0))
        if a.polygons:
            for p in a.polygons:
                draw.polygon([v * scale for v in p], outline=color, width=2)
        x1, y1, x2, y2 = (v * scale for v in a.bbox)
        if not a.polygons:
            draw.rectangle([x1, y1, x2, y2], outline=color, width=2)
        text = a.label if a.score is None else f"{a.label} {a.score:.2f}"
        tx, ty = x1, max(0.0, y1 - 11)
        box = draw.textbbox((tx, ty), text)
        draw.rectangle(box, fill=color)
        draw.text((tx, ty), text, fill=(0, 0, 0))
    out.parent.mkdir(parents=True, exist_ok=True)
    im.save(out, format="PNG")
    return out


def preview_name(index: int, image_name: str) -> str:
    """``003_BloodImage_00003.png``: file name of the preview of the index-th image."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(image_name).with_suffix("").as_posix())
    return f"{index:03d}_{stem}.png"
