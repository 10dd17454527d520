"""The annotate input looks for the same image types as dataset validation."""

from __future__ import annotations

import zipfile

from PIL import Image

from jupyter_cvat_train.annotate.inputs import open_input
from jupyter_cvat_train.annotate.pipeline import decode_image
from jupyter_cvat_train.datasets.imagefiles import IMAGE_EXTENSIONS

NAMES = ["a.jpg", "b.JFIF", "c.gif", "d.PNG", "sub/e.tiff", "f.webp", "g.bmp", "notes.txt"]


def write_images(folder):
    for name in NAMES:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith(".txt"):
            path.write_text("not an image")
        else:
            fmt = {"jfif": "JPEG", "jpg": "JPEG", "tiff": "TIFF", "gif": "GIF"}.get(path.suffix[1:].lower())
            Image.new("RGB", (24, 16), (200, 30, 30)).save(path, format=fmt)


def test_folder_and_zip_inputs_find_every_image_type_validation_accepts(tmp_path):
    images = tmp_path / "images"
    write_images(images)
    expected = sorted(n for n in NAMES if not n.endswith(".txt"))
    assert all(n[n.rindex(".") :].lower() in IMAGE_EXTENSIONS for n in expected)
    found = open_input(images)
    assert sorted(s.name for s in found.images) == expected
    with zipfile.ZipFile(tmp_path / "images.zip", "w") as zf:
        for p in sorted(images.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(images).as_posix())
    zipped = open_input(tmp_path / "images.zip")
    assert sorted(s.name for s in zipped.images) == expected
    for source in found.images + zipped.images:
        dec = decode_image(source, lambda h, w: (h, w))
        assert (dec.width, dec.height) == (24, 16) and tuple(dec.tensor.shape) == (3, 16, 24), source.name
