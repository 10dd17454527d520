"""Image files: their pixel size read from the file header, without decoding.

:func:`image_size` uses the ``imagesize`` package (a Datumaro dependency; it reads the
JPEG SOF / PNG IHDR / GIF / BMP / TIFF headers in pure Python) and falls back to
Pillow's lazy ``Image.open`` for other formats. :func:`image_sizes` reads many files
with a thread pool: the work is mostly system calls, which release the GIL.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import imagesize

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".jfif"}


def image_size(path: Path | str) -> tuple[int, int] | None:
    """(width, height) in pixels of the image at ``path``, or None when the file cannot be
    read as an image (missing, truncated header, unknown format)."""
    try:
        w, h = imagesize.get(str(path))
    except (OSError, ValueError, IndexError, TypeError):
        w = h = -1
    if w > 0 and h > 0:
        return int(w), int(h)
    try:
        from PIL import Image

        with Image.open(path) as im:
            return im.size
    except Exception:  # noqa: BLE001 - any decoder failure means "unreadable"
        return None


def image_sizes(paths: list[Path | str | None], threads: int = 8) -> list[tuple[int, int] | None]:
    """:func:`image_size` of each path (None stays None), in order, read by ``threads`` threads."""
    todo = [(i, p) for i, p in enumerate(paths) if p is not None]
    out: list[tuple[int, int] | None] = [None] * len(paths)
    if len(todo) < 64 or threads <= 1:
        for i, p in todo:
            out[i] = image_size(p)
        return out
    def work(chunk: list[tuple[int, Path | str]]) -> None:
        for i, p in chunk:
            out[i] = image_size(p)

    step = max(64, len(todo) // (threads * 4))
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, [todo[k:k + step] for k in range(0, len(todo), step)]))
    return out
