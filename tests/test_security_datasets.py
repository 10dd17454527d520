"""Crafted exports, as an attacker writes them: references that leave the export, links,
special files, zips that lie about their sizes or share bytes, oversized annotation files.

Every file an export refers to must resolve inside it, or it is an ``unsafe-reference``
error naming the file and the field; the outside file is never read, trained on, or
reported as missing / unreadable (which would tell whether it exists).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from jupyter_cvat_train.datasets import ExportError, generate_sample, load_export, validate_export

SECRET = "SECRET_OUTSIDE_LABEL"
ORACLE_CODES = {"missing-image", "unreadable-image", "image-size-mismatch", "image-too-large"}


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    base = tmp_path_factory.mktemp("samples")
    return {
        fmt: generate_sample(base / fmt, format=fmt, images=3, seed=3, width=64, height=48)
        for fmt in ("coco", "cvat", "voc", "yolo", "mot")
    }


@pytest.fixture
def outside(tmp_path) -> Path:
    """Files beside (outside) the exports the test builds under tmp_path/e."""
    d = tmp_path / "outside"
    d.mkdir()
    (d / "secret.names").write_text(f"{SECRET}_1\n{SECRET}_2\n")
    (d / "secret.jpg").write_bytes(b"\xff\xd8\xff\xc0\x00\x11\x08\x00\x30\x00\x40\x03" + b"\x00" * 64)
    (d / "list.txt").write_text(f"{d / 'secret.jpg'}\n")
    return d


def copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def zip_folder(folder: Path, out: Path) -> Path:
    with zipfile.ZipFile(out, "w") as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(folder).as_posix())
    return out


def codes(report) -> list[str]:
    return sorted(f.code for f in report.findings)


def assert_refused_reference(report, item: str, field: str, outside_dir: Path):
    text = json.dumps(report.to_dict())
    unsafe = [f for f in report.errors if f.code == "unsafe-reference"]
    assert unsafe, report.findings
    assert any(f.item == item and field in f.message for f in unsafe), unsafe
    assert not ORACLE_CODES & set(codes(report)), report.findings
    assert SECRET not in text
    assert not report.ok
    if report.dataset is not None:
        for it in report.dataset.items:
            assert it.image_path is None or Path(it.image_path).is_relative_to(os.path.realpath(report.dataset.root))


# Spellings of a path that leaves the export (relative to the folder it is joined to).
def escapes(outside: Path, depth: int) -> list[str]:
    up = "../" * depth
    return [
        f"{up}outside/secret.jpg",
        "../../../../../../etc/passwd",
        "/etc/hostname",
        str(outside / "secret.jpg"),
        f"images/{up}outside/secret.jpg",
        "C:\\..\\x.jpg",
        "C:x.jpg",
        up.replace("/", "\\") + "outside\\secret.jpg",
        "%2e%2e/%2e%2e/%2e%2e/outside/secret.jpg",
        "..%2F..%2Foutside%2Fsecret.jpg",
        "\\\\server\\share\\x.jpg",
    ]


def set_coco_file_name(root: Path, value: str) -> None:
    ann = root / "annotations" / "instances_default.json"
    coco = json.loads(ann.read_text())
    coco["images"][0]["file_name"] = value
    ann.write_text(json.dumps(coco))


def test_coco_file_name_outside_the_export_in_each_spelling(samples, outside, tmp_path):
    for k, ref in enumerate(escapes(outside, 3) + ["a\x00b.jpg"]):
        root = copy(samples["coco"], tmp_path / f"e{k}")
        set_coco_file_name(root, ref)
        report = validate_export(root)
        assert_refused_reference(report, "annotations/instances_default.json", "images[0].file_name", outside)
        assert len(report.dataset.items) == 2  # the refused image is left out, with its annotations
        assert not [f for f in report.findings if f.code == "unknown-image"]
        ds = load_export(root)  # what training loads: never the outside file
        assert all(Path(it.image_path).is_relative_to(root) for it in ds.items)


def test_coco_in_a_zip_same_refusal(samples, outside, tmp_path):
    for k, ref in enumerate(["../../../../etc/passwd", "/etc/hostname", "C:\\..\\x"]):
        folder = copy(samples["coco"], tmp_path / f"f{k}")
        set_coco_file_name(folder, ref)
        report = validate_export(zip_folder(folder, tmp_path / f"e{k}.zip"))
        assert_refused_reference(report, "annotations/instances_default.json", "images[0].file_name", outside)


def test_existing_and_missing_outside_files_give_the_same_report(samples, outside, tmp_path):
    """No oracle: a reference to an outside file that exists and to one that does not
    are reported alike."""
    reports = []
    for k, name in enumerate(["secret.jpg", "does-not-exist.jpg"]):
        root = copy(samples["coco"], tmp_path / f"e{k}")
        set_coco_file_name(root, f"../../../outside/{name}")
        report = validate_export(root)
        reports.append([(f.code, f.severity, f.item, f.message.replace(name, "X")) for f in report.findings])
    assert reports[0] == reports[1]
    for k, name in enumerate(["secret.jpg", "does-not-exist.jpg"]):  # the same for CVAT XML
        root = copy(samples["cvat"], tmp_path / f"c{k}")
        xml = root / "default.xml"
        xml.write_text(xml.read_text().replace('name="shapes_00000.jpg"', f'name="../../outside/{name}"', 1))
        report = validate_export(root)
        assert_refused_reference(report, "default.xml", "name", outside)
        reports.append([(f.code, f.item, f.message.replace(name, "X")) for f in report.findings])
    assert reports[2] == reports[3]


@pytest.mark.parametrize(
    "ref",
    [
        "../outside/secret.names",
        "OUTSIDE_ABS",
        "data/../../outside/secret.names",
        "data\\..\\..\\outside\\secret.names",
        "C:\\..\\outside\\secret.names",
        "..%2foutside%2fsecret.names",
    ],
)
def test_yolo_obj_names_outside_never_gives_labels(samples, outside, tmp_path, ref):
    root = copy(samples["yolo"], tmp_path / "e")
    ref = str(outside / "secret.names") if ref == "OUTSIDE_ABS" else ref
    data = (root / "obj.data").read_text().replace("names = data/obj.names", f"names = {ref}")
    (root / "obj.data").write_text(data)
    report = validate_export(root)
    assert_refused_reference(report, "obj.data", "names", outside)
    assert report.dataset.labels == ["circle", "square", "triangle"]  # the export's own obj.names


def test_yolo_list_files_and_lines_outside(samples, outside, tmp_path):
    root = copy(samples["yolo"], tmp_path / "a")
    data = (root / "obj.data").read_text().replace("train = data/train.txt", f"train = {outside / 'list.txt'}")
    (root / "obj.data").write_text(data)
    assert_refused_reference(validate_export(root), "obj.data", "train", outside)
    for k, line in enumerate(["data/../../outside/secret.jpg", str(outside / "secret.jpg"), "..\\outside\\secret.jpg"]):
        root = copy(samples["yolo"], tmp_path / f"b{k}")
        lst = root / "train.txt"
        lst.write_text(line + "\n" + lst.read_text())
        report = validate_export(root)
        assert_refused_reference(report, "train.txt line 1", "image path", outside)
        assert len(report.dataset.items) == 3


def test_cvat_xml_image_names_outside(samples, outside, tmp_path):
    for k, ref in enumerate(r for r in escapes(outside, 2) if "\\\\" not in r):
        root = copy(samples["cvat"], tmp_path / f"e{k}")
        xml = root / "default.xml"
        xml.write_text(xml.read_text().replace('name="shapes_00000.jpg"', f'name="{ref}"', 1))
        report = validate_export(root)
        assert_refused_reference(report, "default.xml", "name", outside)
        assert [it.id for it in report.dataset.items] == ["shapes_00001", "shapes_00002"]


def test_voc_filename_outside(samples, outside, tmp_path):
    for k, ref in enumerate(["../../outside/secret.jpg", "/etc/hostname"]):
        root = copy(samples["voc"], tmp_path / f"e{k}")
        xml = root / "Annotations" / "shapes_00000.xml"
        xml.write_text(xml.read_text().replace("<filename>shapes_00000.jpg</filename>", f"<filename>{ref}</filename>"))
        report = validate_export(root)
        assert any(f.code == "unsafe-reference" for f in report.errors), report.findings
        assert not ORACLE_CODES & set(codes(report)) and not report.ok


def test_mot_image_folder_outside(samples, outside, tmp_path):
    root = copy(samples["mot"], tmp_path / "e")
    (root / "seqinfo.ini").write_text(
        "[Sequence]\nname=x\nimDir=../outside\nframeRate=25\nseqLength=3\nimWidth=64\nimHeight=48\nimExt=.jpg\n"
    )
    report = validate_export(root)
    assert any(
        f.code == "unsafe-reference" and f.item == "seqinfo.ini" and "imDir" in f.message for f in report.errors
    ), report.findings
    assert "secret" not in json.dumps(report.to_dict())


@pytest.mark.parametrize("target", ["OUTSIDE_FILE", "OUTSIDE_MISSING", "/dev/zero", "/etc/hostname", "OUTSIDE_DIR"])
def test_symlink_in_a_folder_export_leading_outside(samples, outside, tmp_path, target):
    target = {
        "OUTSIDE_FILE": str(outside / "secret.jpg"),
        "OUTSIDE_MISSING": str(outside / "nope.jpg"),
        "OUTSIDE_DIR": str(outside),
    }.get(target, target)
    root = copy(samples["coco"], tmp_path / "e")
    link = root / "images" / "default" / "shapes_00000.jpg"
    link.unlink()
    link.symlink_to(target)
    report = validate_export(root)
    assert [(f.code, f.item) for f in report.findings] == [("unsafe-reference", "images/default/shapes_00000.jpg")]
    assert report.dataset is None and not report.ok
    with pytest.raises(ExportError, match="symbolic link"):
        load_export(root)
    # a relative link that climbs out is the same
    link.unlink()
    link.symlink_to("../../../outside/secret.jpg")
    assert codes(validate_export(root)) == ["unsafe-reference"]


def test_links_inside_the_export_still_work(samples, tmp_path):
    root = copy(samples["coco"], tmp_path / "e")
    img = root / "images" / "default"
    (root / "store").mkdir()
    os.replace(img / "shapes_00000.jpg", root / "store" / "a.jpg")
    (img / "shapes_00000.jpg").symlink_to("../../store/a.jpg")
    report = validate_export(root)
    assert "unsafe-reference" not in codes(report) and len(report.dataset.items) == 3


def test_special_files_are_refused_without_being_opened(samples, tmp_path):
    # a FIFO as the export path: opening it would block; the CLI answers at once
    fifo = tmp_path / "export.zip"
    os.mkfifo(fifo)
    r = subprocess.run(
        [sys.executable, "-m", "jupyter_cvat_train", "validate", str(fifo)], capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 2 and "FIFO" in r.stderr and "Traceback" not in r.stderr
    # a link to a device as the export path
    dev = tmp_path / "dev.zip"
    dev.symlink_to("/dev/zero")
    report = validate_export(dev)
    assert not report.readable and "device" in report.findings[0].message
    # a FIFO inside a folder export, where an annotation file should be
    root = copy(samples["coco"], tmp_path / "e")
    ann = root / "annotations" / "instances_default.json"
    ann.unlink()
    os.mkfifo(ann)
    report = validate_export(root)
    assert [(f.code, f.item) for f in report.findings] == [("special-file", "annotations/instances_default.json")]


def central_directory_records(data: bytes) -> list[int]:
    """Offsets of the central directory file headers (APPNOTE 4.3.12) in a zip."""
    out, i = [], data.find(b"PK\x01\x02")
    while i >= 0:
        out.append(i)
        i = data.find(b"PK\x01\x02", i + 4)
    return out


def cache_bytes() -> int:
    cache = Path(os.environ["CVAT_TRAIN_CACHE"])
    return sum(p.stat().st_size for p in cache.rglob("*") if p.is_file())


def test_zip_that_overstates_compressed_sizes_is_refused(tmp_path):
    """The zip-bomb ratio is not computed from declared sizes: a central directory that
    says each entry is 1 GB compressed does not make 300 MB of zeros acceptable."""
    z = tmp_path / "e.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("annotations/instances_default.json", "{}")
        zf.writestr("images/default/big.jpg", b"\0" * (300 * 1024**2))
    data = bytearray(z.read_bytes())
    for off in central_directory_records(bytes(data)):
        data[off + 20 : off + 24] = struct.pack("<I", 0x3FFFFFFF)  # compressed size
    z.write_bytes(bytes(data))
    before = cache_bytes()
    report = validate_export(z)
    assert not report.readable and report.findings[0].code == "unreadable-export"
    assert "zip bomb" in report.findings[0].message
    assert cache_bytes() - before < 70 * 1024**2


def test_honest_bomb_refused_by_bytes_written_against_real_archive_size(tmp_path):
    z = tmp_path / "e.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        for k in range(3):
            zf.writestr(f"images/default/{k}.jpg", b"\0" * (40 * 1024**2))
    with pytest.raises(ExportError, match="zip bomb") as e:
        load_export(z)
    assert "archive" in str(e.value)


def test_overlapping_zip_entries_are_refused(tmp_path):
    """The non-recursive zip bomb: several central directory entries share one local
    entry's data."""
    z = tmp_path / "e.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("images/default/a.jpg", b"\0" * 1024**2)
        first = zf.filelist[0]
        for k in range(3):
            info = zipfile.ZipInfo(f"images/default/copy{k}.jpg", first.date_time)
            for attr in ("compress_type", "CRC", "compress_size", "file_size", "header_offset", "external_attr"):
                setattr(info, attr, getattr(first, attr))
            zf.filelist.append(info)
    report = validate_export(z)
    assert not report.readable and "overlaps" in report.findings[0].message


def test_duplicate_zip_entry_names_are_refused(samples, tmp_path):
    z = zip_folder(samples["coco"], tmp_path / "e.zip")
    with pytest.warns(UserWarning), zipfile.ZipFile(z, "a") as zf:
        zf.writestr("annotations/instances_default.json", '{"images": [], "annotations": [], "categories": []}')
    report = validate_export(z)
    assert not report.readable and "both named 'annotations/instances_default.json'" in report.findings[0].message


@pytest.mark.parametrize("fmt", ["coco", "cvat", "yolo"])
def test_annotation_file_over_the_size_cap(samples, tmp_path, fmt):
    env = {**os.environ, "CVAT_TRAIN_MAX_ANNOTATION_BYTES": "100"}
    r = subprocess.run(
        [sys.executable, "-m", "jupyter_cvat_train", "validate", str(samples[fmt]), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    message = json.loads(r.stdout)["errors"][0]["message"]
    name = {"coco": "annotations/instances_default.json", "cvat": "default.xml", "yolo": "train.txt"}[fmt]
    size = (samples[fmt] / name).stat().st_size
    assert f"{name} is {size} bytes, over the 100 bytes limit" in message
    assert "CVAT_TRAIN_MAX_ANNOTATION_BYTES" in message
