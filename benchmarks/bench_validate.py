"""Benchmark: `cvat-train validate` on a COCO export of 20,000 images x 10 boxes.

Goal: wall time at most 2x pycocotools' COCO() load of the same JSON, at least
5x faster than Datumaro's import + DetectionValidator, peak memory under 1 GB.

Each contender runs in its own subprocess; wall time is measured around it and peak
memory is the child's maximum resident set size (os.wait4 rusage, ru_maxrss in KiB).
The contenders alternate over ``--repeat`` rounds and each figure is the median.
The export (real, small JPEGs whose sizes match the JSON) is generated once and cached
under $CVAT_TRAIN_CACHE/bench (or ~/.cache/jupyter_cvat_train/bench).

    .venv/bin/python benchmarks/bench_validate.py [--images 20000] [--boxes 10] [--skip-datumaro] [--repeat 3]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from jupyter_cvat_train.datasets.formats.coco import coco_document  # noqa: E402
from jupyter_cvat_train.datasets.model import Annotation  # noqa: E402
from jupyter_cvat_train.fileio import cache_root  # noqa: E402

SIZES = [(96, 64), (80, 80), (112, 64), (64, 96)]  # small images, several sizes


def generate(folder: Path, n_images: int, n_boxes: int, seed: int = 0) -> Path:
    """A COCO 1.0 export (CVAT layout) with n_images real JPEGs and n_boxes boxes each."""
    import numpy as np
    from PIL import Image

    marker = folder / ".complete"
    if marker.exists():
        return folder
    rng = np.random.default_rng(seed)
    img_dir = folder / "images" / "default"
    img_dir.mkdir(parents=True, exist_ok=True)
    (folder / "annotations").mkdir(exist_ok=True)
    # one encoded JPEG per size, with per-file noise bytes differing via quality would be
    # slow; the content does not matter to validation, the header does.
    encoded = {}
    for w, h in SIZES:
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(buf, "JPEG", quality=80)
        encoded[(w, h)] = buf.getvalue()
    labels = ["car", "person", "bicycle", "dog", "cat"]
    images = []
    for i in range(n_images):
        w, h = SIZES[i % len(SIZES)]
        name = f"img_{i:06d}.jpg"
        (img_dir / name).write_bytes(encoded[(w, h)])
        bw = rng.uniform(4, w / 2, n_boxes)
        bh = rng.uniform(4, h / 2, n_boxes)
        x = rng.uniform(0, w - bw)
        y = rng.uniform(0, h - bh)
        cats = rng.integers(1, len(labels) + 1, n_boxes)
        boxes = [(float(x[k]), float(y[k]), float(x[k] + bw[k]), float(y[k] + bh[k])) for k in range(n_boxes)]
        images.append((name, w, h, [Annotation(labels[int(c) - 1], box) for c, box in zip(cats, boxes, strict=True)]))
    coco = coco_document(images, labels)
    (folder / "annotations" / "instances_default.json").write_text(json.dumps(coco))
    marker.write_text("ok")
    return folder


def measure(name: str, argv: list[str]) -> dict:
    """Run argv; return wall seconds, peak RSS (MiB) and exit code."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    code = os.waitstatus_to_exitcode(status)
    result = {"name": name, "wall_s": wall, "peak_mib": usage.ru_maxrss / 1024, "exit": code}
    if code not in (0, 1):
        result["stderr"] = err[-2000:]
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=20000)
    ap.add_argument("--boxes", type=int, default=10)
    ap.add_argument("--skip-datumaro", action="store_true")
    ap.add_argument("--repeat", type=int, default=3, help="rounds; each figure is the median")
    ap.add_argument("--generate-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()

    py = sys.executable
    folder = cache_root() / "bench" / f"coco-{args.images}x{args.boxes}"
    if args.generate_only:
        generate(folder, args.images, args.boxes)
        return
    t0 = time.perf_counter()
    # in a child, so this process stays small: a child's peak RSS counts its parent's
    # memory at fork time
    subprocess.run(
        [py, __file__, "--generate-only", "--images", str(args.images), "--boxes", str(args.boxes)], check=True
    )
    print(f"export: {folder} ({args.images} images x {args.boxes} boxes; ready in {time.perf_counter() - t0:.1f} s)")
    ann = folder / "annotations" / "instances_default.json"
    print(f"annotation file: {ann.stat().st_size / 1e6:.1f} MB")

    contenders = [
        ("cvat-train validate", [py, "-m", "jupyter_cvat_train", "validate", str(folder), "--json"]),
        ("pycocotools COCO() load", [py, "-c", f"from pycocotools.coco import COCO; COCO({str(ann)!r})"]),
    ]
    if not args.skip_datumaro:
        contenders.append(
            (
                "Datumaro import + DetectionValidator",
                [
                    py,
                    "-c",
                    (
                        "import datumaro as dm\n"
                        "from datumaro.plugins.validators import DetectionValidator\n"
                        f"ds = dm.Dataset.import_from({str(folder)!r}, 'coco_instances')\n"
                        "DetectionValidator().validate(ds)\n"
                    ),
                ],
            )
        )
    # Rounds alternate the contenders, so a burst of load on this small machine hits all of
    # them alike; each figure is the median of its rounds (peak memory: the largest).
    rounds = [[measure(name, argv) for name, argv in contenders] for _ in range(args.repeat)]
    runs = []
    for k in range(len(contenders)):
        mine = [r[k] for r in rounds]
        runs.append(
            {
                **mine[0],
                "wall_s": statistics.median(m["wall_s"] for m in mine),
                "peak_mib": max(m["peak_mib"] for m in mine),
                "exit": max(m["exit"] for m in mine),
            }
        )
    print(f"median of {args.repeat} rounds")
    print(f"\n{'contender':<40}{'wall s':>9}{'peak MiB':>10}{'exit':>6}")
    for r in runs:
        print(f"{r['name']:<40}{r['wall_s']:>9.2f}{r['peak_mib']:>10.0f}{r['exit']:>6}")
        if "stderr" in r:
            print("   stderr:", r["stderr"])
    ours, coco = runs[0], runs[1]
    print(f"\nvalidate / pycocotools load = {ours['wall_s'] / coco['wall_s']:.2f}x  (goal <= 2x)")
    if len(runs) > 2:
        print(f"Datumaro / validate         = {runs[2]['wall_s'] / ours['wall_s']:.2f}x  (goal >= 5x)")
    print(f"validate peak memory        = {ours['peak_mib']:.0f} MiB  (goal < 1024 MiB)")


if __name__ == "__main__":
    main()
