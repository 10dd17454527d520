"""TFRecord 1.0 (TensorFlow Object Detection API) — our own reader.

Why our own: Datumaro's ``tf_detection_api`` plugin needs TensorFlow (a 2.4 GB optional
extra, absent by default), and the two formats involved are small and documented:

- TFRecord framing (https://www.tensorflow.org/tutorials/load_data/tfrecord#tfrecords_format_details):
  each record is ``uint64 length``, ``uint32 masked_crc32c(length)``, ``byte data[length]``,
  ``uint32 masked_crc32c(data)``, little-endian. The CRCs are not verified here (the
  standard library has no CRC-32C); a truncated file is detected by its lengths.
- Each record is a serialized ``tf.train.Example`` protobuf
  (tensorflow/core/example/example.proto, feature.proto), decoded with the protobuf wire
  format (https://protobuf.dev/programming-guides/encoding/): ``Example.features`` (1) ->
  ``Features.feature`` (1, map<string, Feature>: entries of key 1, value 2) -> ``Feature``
  oneof ``bytes_list`` (1), ``float_list`` (2), ``int64_list`` (3), each ``value`` (1),
  packed or not.

Keys used (TF Object Detection API, as Datumaro / CVAT write them): ``image/filename``,
``image/width``, ``image/height``, ``image/encoded``, ``image/object/bbox/{xmin,ymin,xmax,ymax}``
(normalized to [0, 1]), ``image/object/class/text`` and ``image/object/class/label``.
Labels come from ``label_map.pbtxt`` (``item { id: N name: 'X' }``).
The embedded images are written once to the cache (``<cache>/tfrecord/<sha256>/<subset>/``).
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Iterator
from pathlib import Path

from ...fileio import atomic_write, cache_root
from ..archive import cached_sha256
from ..findings import ExportError, Finding, finding
from ..model import Annotation, Dataset, Item
from ..references import read_annotation_file


class WireError(ValueError):
    """The bytes are not a valid protobuf message of the expected shape."""


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise WireError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise WireError("varint longer than 10 bytes")


def fields(buf: bytes) -> Iterator[tuple[int, int, object]]:
    """(field number, wire type, value) of each field of a protobuf message; value is an
    int for varint / fixed types and a bytes slice for length-delimited ones."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            if pos + n > end:
                raise WireError("length-delimited field runs past the message")
            value, pos = buf[pos : pos + n], pos + n
        elif wire == 5:
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise WireError(f"unsupported wire type {wire}")
        yield number, wire, value


def _feature_values(buf: bytes) -> list:
    """The values of one ``tf.train.Feature``: bytes, floats or ints."""
    out: list = []
    for kind, _, lst in fields(buf):
        for number, wire, v in fields(lst):
            if number != 1:
                continue
            if kind == 1:
                out.append(bytes(v))
            elif kind == 2:
                if wire == 2:  # packed floats
                    out.extend(struct.unpack(f"<{len(v) // 4}f", v))
                else:
                    out.append(struct.unpack("<f", v)[0])
            elif kind == 3:
                if wire == 2:  # packed varints
                    pos = 0
                    while pos < len(v):
                        x, pos = _varint(v, pos)
                        out.append(x - (1 << 64) if x >= 1 << 63 else x)
                else:
                    out.append(v - (1 << 64) if v >= 1 << 63 else v)
    return out


def parse_example(buf: bytes) -> dict[str, list]:
    """A serialized ``tf.train.Example`` as {feature key: list of values}.
    Raises WireError for bytes that are not one."""
    features: dict[str, list] = {}
    for number, wire, feats in fields(buf):
        if number != 1 or wire != 2:
            continue
        for n2, w2, entry in fields(feats):
            if n2 != 1 or w2 != 2:
                continue
            key, value = None, b""
            for n3, _, v in fields(entry):
                if n3 == 1:
                    key = bytes(v).decode("utf-8", "replace")
                elif n3 == 2:
                    value = v
            if key is not None:
                features[key] = _feature_values(value)
    return features


def read_records(path: Path) -> Iterator[bytes]:
    """The records of a TFRecord file. Raises WireError at a truncated record (or one
    whose length header claims more bytes than the file has left)."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        while True:
            head = f.read(12)
            if not head:
                return
            if len(head) < 12:
                raise WireError("truncated record header")
            (length,) = struct.unpack("<Q", head[:8])
            if length > size - f.tell():  # never allocate what the header claims beyond the file
                raise WireError(f"truncated record (expected {length} bytes)")
            data = f.read(length)
            if len(data) < length or len(f.read(4)) < 4:
                raise WireError(f"truncated record (expected {length} bytes)")
            yield data


def read_label_map(path: Path) -> dict[int, str]:
    """{id: name} from a ``label_map.pbtxt`` (protobuf text format, ``item { id name }``)."""
    text = read_annotation_file(path, path.name).decode("utf-8", errors="replace")
    out: dict[int, str] = {}
    for block in re.findall(r"item\s*\{(.*?)\}", text, flags=re.S):
        m_id = re.search(r"\bid\s*:\s*(-?\d+)", block)
        m_name = re.search(r"\bname\s*:\s*(['\"])(.*?)\1", block)
        if m_id and m_name:
            out[int(m_id.group(1))] = m_name.group(2)
    return out


def _first(feats: dict, key: str, default=None):
    v = feats.get(key)
    return v[0] if v else default


def load(root: Path) -> tuple[Dataset, list[Finding]]:
    """Read a TFRecord 1.0 export: ``<subset>.tfrecord`` files and ``label_map.pbtxt``.
    Embedded images are written to the cache, so every Item.image_path is a real file.
    Raises ExportError when there is no .tfrecord file."""
    files = sorted(p for p in root.iterdir() if p.suffix == ".tfrecord")
    if not files:
        raise ExportError(f"{root} has no .tfrecord file: not a TFRecord export")
    findings: list[Finding] = []
    label_map = read_label_map(root / "label_map.pbtxt") if (root / "label_map.pbtxt").is_file() else {}
    if not label_map:
        findings.append(
            finding(
                "no-labels",
                "label_map.pbtxt is missing or declares no 'item { id name }'",
                "label_map.pbtxt",
                hint="Export again from CVAT; the label map names the labels.",
            )
        )
    labels = [label_map[k] for k in sorted(label_map)]
    items: list[Item] = []
    for path in files:
        subset = path.stem or "default"
        image_dir = cache_root() / "tfrecord" / cached_sha256(path) / subset
        image_dir.mkdir(parents=True, exist_ok=True)
        try:
            for index, record in enumerate(read_records(path)):
                try:
                    feats = parse_example(record)
                except WireError as e:
                    findings.append(
                        finding(
                            "invalid-annotation",
                            f"{path.name}: record {index} is not a tf.train.Example ({e}); skipped",
                            path.name,
                        )
                    )
                    continue
                items.append(_item(feats, index, subset, image_dir, label_map, labels, findings))
        except WireError as e:
            findings.append(
                finding(
                    "invalid-annotation",
                    f"{path.name}: {e} after {len(items)} records; the file is cut short, the rest is lost",
                    path.name,
                    hint="Download the export again.",
                )
            )
        except OSError as e:
            raise ExportError(f"{path} cannot be read: {e}") from None
    return Dataset(format="tfrecord", root=root, labels=labels, items=items), findings


def _item(
    feats: dict,
    index: int,
    subset: str,
    image_dir: Path,
    label_map: dict[int, str],
    labels: list[str],
    findings: list[Finding],
) -> Item:
    filename = _first(feats, "image/filename", b"").decode("utf-8", "replace")
    filename = Path(filename).name or f"{_first(feats, 'image/source_id', b'').decode() or index}.jpg"
    width, height = _first(feats, "image/width"), _first(feats, "image/height")
    encoded = _first(feats, "image/encoded", b"")
    image_path = None
    if encoded:
        image_path = image_dir / filename
        if not image_path.exists() or image_path.stat().st_size != len(encoded):
            atomic_write(image_path, encoded)
    item = Item(id=Path(filename).stem, image_path=image_path, width=width, height=height, subset=subset)
    cols = [feats.get(f"image/object/bbox/{k}", []) for k in ("xmin", "ymin", "xmax", "ymax")]
    texts = feats.get("image/object/class/text", [])
    ids = feats.get("image/object/class/label", [])
    n = min(len(c) for c in cols)
    if any(len(c) != n for c in cols):
        findings.append(
            finding(
                "invalid-annotation",
                f"{filename}: the bbox coordinate lists differ in length; {n} boxes read",
                filename,
            )
        )
    for j in range(n):
        label = (
            texts[j].decode("utf-8", "replace") if j < len(texts) else label_map.get(ids[j]) if j < len(ids) else None
        )
        if label is None or label not in labels:
            findings.append(
                finding(
                    "undeclared-label",
                    f"a box on {filename} has class "
                    f"{label or (ids[j] if j < len(ids) else '?')!r}, which label_map.pbtxt does "
                    "not declare",
                    filename,
                )
            )
            continue
        x1, y1, x2, y2 = (c[j] for c in cols)
        sx, sy = (width or 1), (height or 1)
        # float32 storage: round to 1/1000 pixel so 260.0 does not read as 259.99998
        item.annotations.append(
            Annotation(label, (round(x1 * sx, 3), round(y1 * sy, 3), round(x2 * sx, 3), round(y2 * sy, 3)))
        )
    return item
