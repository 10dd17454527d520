"""Image files: their pixel size read from the file header, without decoding.

:func:`image_size` reads JPEG and PNG headers itself with raw system calls (3 per
file instead of the 7 a buffered file object makes: the validation of 20,000 images is
bound by them), then falls back to the ``imagesize`` package (GIF, BMP, TIFF, ...) and
to Pillow's lazy ``Image.open``. :func:`image_sizes` reads many files
with a thread pool: the work is mostly system calls, which release the GIL.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import imagesize

from .references import open_regular

# Pillow refuses to decode above 2 x Image.MAX_IMAGE_PIXELS (a decompression bomb); the same
# default here, so validation flags what training could not decode.
MAX_IMAGE_PIXELS = int(os.environ.get("CVAT_TRAIN_MAX_IMAGE_PIXELS", 2 * 89_478_485))
# The image file name endings (lower case) an export's image folder, YOLO's image lists and
# the annotate input are searched for: the still-image formats CVAT takes and Pillow reads.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".jfif", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (ITU-T T.81, table B.1): C0-CF except DHT (C4), JPG (C8), DAC (CC).
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_HEADER_READ = 4096
_HEADER_MAX = 1 << 20  # give up on a JPEG whose frame header is not in its first MiB


def _jpeg_or_png_size(path: str) -> tuple[int, int] | None:
    """(width, height) from a JPEG SOF or PNG IHDR header, read with 4 system calls
    (open, fstat to require a regular file, read, close; one more read to skip each large EXIF/ICC segment), or None when the file is neither or its header is unusual (the caller
    then asks imagesize / Pillow). Formats: ITU-T T.81 B.1.1 (JPEG markers and segment
    lengths), PNG specification 11.2.2 (IHDR is the first chunk: width, height big-endian)."""
    fd = open_regular(path)
    try:
        data = os.read(fd, _HEADER_READ)
        if data[:8] == _PNG_SIGNATURE and data[12:16] == b"IHDR" and len(data) >= 24:
            return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        if data[:2] != b"\xff\xd8":
            return None
        i = 2
        while True:
            while i + 9 > len(data):
                if len(data) >= _HEADER_MAX:
                    return None
                more = os.read(fd, max(_HEADER_READ, i + 9 - len(data)))
                if not more:
                    return None
                data += more
            if data[i] != 0xFF:
                return None
            marker = data[i + 1]
            if marker == 0xFF:  # fill byte
                i += 1
            elif marker in _SOF_MARKERS:
                return int.from_bytes(data[i + 7 : i + 9], "big"), int.from_bytes(data[i + 5 : i + 7], "big")
            elif marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
                i += 2
            else:
                i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    finally:
        os.close(fd)


def image_size(path: Path | str) -> tuple[int, int] | None:
    """(width, height) in pixels of the image at ``path``, or None when the file cannot be
    read as an image (missing, truncated header, unknown format)."""
    try:
        size = _jpeg_or_png_size(os.fspath(path))
    except OSError:
        return None
    if size and size[0] > 0 and size[1] > 0:
        return size
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
        list(pool.map(work, [todo[k : k + step] for k in range(0, len(todo), step)]))
    return out
