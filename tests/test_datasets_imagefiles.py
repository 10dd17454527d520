"""Image sizes from file headers: our JPEG/PNG reader against Pillow, on the layouts
real files have (progressive, big EXIF and ICC segments), and bad files."""

import pytest
from PIL import Image

from jupyter_cvat_train.datasets.imagefiles import _jpeg_or_png_size, image_size, image_sizes


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("baseline.jpg", {}),
        ("progressive.jpg", {"progressive": True}),
        ("exif.jpg", {"exif": b"Exif\x00\x00" + bytes(20000)}),  # APP1 larger than one read
        ("icc.jpg", {"icc_profile": b"x" * 70000}),  # ICC split over several APP2
        ("gray.jpg", {"mode": "L"}),
        ("cmyk.jpg", {"mode": "CMYK"}),
        ("image.png", {}),
        ("rgba.png", {"mode": "RGBA"}),
    ],
)
def test_header_size_matches_pillow(tmp_path, name, kwargs):
    kwargs = dict(kwargs)
    im = Image.new(kwargs.pop("mode", "RGB"), (321, 123))
    path = tmp_path / name
    im.save(path, **kwargs)
    assert _jpeg_or_png_size(str(path)) == (321, 123)
    assert image_size(path) == (321, 123)


def test_other_formats_fall_back_to_libraries(tmp_path):
    Image.new("RGB", (17, 9)).save(tmp_path / "a.gif")
    Image.new("RGB", (17, 9)).save(tmp_path / "a.bmp")
    assert _jpeg_or_png_size(str(tmp_path / "a.gif")) is None
    assert image_size(tmp_path / "a.gif") == (17, 9) and image_size(tmp_path / "a.bmp") == (17, 9)


def test_bad_files_give_none(tmp_path):
    (tmp_path / "cut.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF")  # header cut before the frame
    (tmp_path / "text.jpg").write_text("not an image")
    (tmp_path / "empty.png").write_bytes(b"")
    for name in ("cut.jpg", "text.jpg", "empty.png", "missing.jpg"):
        assert image_size(tmp_path / name) is None, name


def test_many_files_in_threads_keep_their_order(tmp_path):
    paths = []
    for k in range(80):
        p = tmp_path / f"{k}.jpg"
        Image.new("RGB", (10 + k, 20)).save(p)
        paths.append(p)
    assert image_sizes(paths + [None], threads=4) == [(10 + k, 20) for k in range(80)] + [None]
