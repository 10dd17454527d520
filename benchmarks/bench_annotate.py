"""Benchmark: end-to-end images/s of ``cvat-train annotate`` vs a naive baseline.

For each model template: one model (random weights, fixed seed, ``--labels`` labels:
91 by default, torchvision's COCO head, the setting in which the issue's baseline figures
were measured) is saved as a model folder; then, in the same run,

- naive baseline: that model (loaded from the same folder, so the same weights) called
  on one image at a time, on tensors decoded before the clock starts (float CHW in
  [0, 1], the full 1280x960 image), under ``torch.no_grad`` with the model's default
  post-processing; detections filtered at the threshold afterwards;
- ours: ``cvat-train annotate FOLDER --model-dir M --output X.zip --format cvat`` as a
  subprocess: JPEG files in, CVAT zip out. Reported twice: the pipeline's own time
  (summary ``seconds``: first image read to zip written) and the whole command's wall
  time (including Python start, imports and model loading).

The number of detections at or above the threshold is printed for both, as a check
that the two compute the same thing (the pipeline decodes JPEGs at reduced DCT scale
and resizes with antialiasing, so boxes differ slightly; counts should be close).

Usage::

    .venv/bin/python benchmarks/bench_annotate.py [--images N] [--labels 91] [--threads 2]
        [--templates ssdlite320-mobilenet-v3,fasterrcnn-mobilenet-v3-fpn,fasterrcnn-resnet50-fpn-v2]
        [--engine torch|onnx] [--extra "--batch-size 2"]

Prints one line per template: images/s of the naive baseline at --threads intra-op
threads (the issue's baseline) and at 1 thread (on a loaded machine OpenMP teams of 2
stall, so the 1-thread figure is the fairer one there), of ours (pipeline time and
whole command), and the ratios ours/naive; goal >= 1.5x on the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# template -> images by default: enough for about 10 s of the naive baseline, so that the whole
# command's fixed cost (Python start, imports, model loading: about 3 s) is amortized as in real use.
TEMPLATES = {"ssdlite320-mobilenet-v3": 160, "fasterrcnn-mobilenet-v3-fpn": 24, "fasterrcnn-resnet50-fpn-v2": 8}


def make_images(folder: Path, n: int, size=(1280, 960), seed: int = 0) -> list[Path]:
    """``n`` JPEGs (quality 90) of ``size`` with textured background and shapes."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        p = folder / f"frame_{i:05d}.jpg"
        paths.append(p)
        if p.exists():
            continue
        noise = rng.integers(0, 255, (size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
        im = Image.fromarray(noise).resize(size, Image.BICUBIC).filter(ImageFilter.GaussianBlur(2))
        d = ImageDraw.Draw(im)
        for _ in range(12):
            x, y = int(rng.integers(0, size[0] - 200)), int(rng.integers(0, size[1] - 200))
            r = int(rng.integers(20, 180))
            color = tuple(int(c) for c in rng.integers(0, 255, 3))
            (d.ellipse if rng.random() < 0.5 else d.rectangle)([x, y, x + r, y + r], fill=color)
        im.save(p, quality=90)
    return paths


def naive(model_dir: Path, paths: list[Path], threshold: float, threads: int) -> tuple[float, int]:
    """(images/s, detections >= threshold) of one-image-at-a-time calls on decoded tensors,
    with ``threads`` intra-op threads."""
    import torch

    torch.set_num_threads(threads)
    from PIL import Image
    from torchvision.transforms.functional import pil_to_tensor

    from jupyter_cvat_train.models import load_trained_model

    model = load_trained_model(model_dir).model.eval()
    tensors = [pil_to_tensor(Image.open(p).convert("RGB")).float() / 255 for p in paths]
    with torch.no_grad():
        model([tensors[0]])  # warm-up, as the pipeline's first batch is timed with its own warm-up
        t = time.perf_counter()
        n_det = 0
        for x in tensors:
            out = model([x])[0]
            n_det += int((out["scores"] >= threshold).sum())
        dt = time.perf_counter() - t
    return len(paths) / dt, n_det


def ours(model_dir: Path, folder: Path, out: Path, threshold: float, engine: str, extra: str, threads: int) -> dict:
    exe = Path(sys.executable).parent / "cvat-train"
    cmd = [
        str(exe),
        "annotate",
        str(folder),
        "--model-dir",
        str(model_dir),
        "--output",
        str(out),
        "--format",
        "cvat",
        "--threshold",
        str(threshold),
        "--engine",
        engine,
        "--no-progress",
        "--overwrite",
        *shlex.split(extra),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"cvat-train annotate failed:\n{r.stdout}\n{r.stderr}")
    summary = json.loads(out.with_name(out.stem + ".summary.json").read_text())
    summary["wall"] = wall
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=None, help="images per template (default: see TEMPLATES)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument(
        "--labels", type=int, default=91, help="labels of the model's head (91 = COCO's, as torchvision builds it)"
    )
    ap.add_argument("--templates", default=",".join(TEMPLATES))
    ap.add_argument("--engine", default="torch")
    ap.add_argument("--extra", default="", help="more cvat-train annotate options, e.g. '--batch-size 4'")
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()

    import torch

    from jupyter_cvat_train.models import build_model, save_model_dir

    torch.set_num_threads(args.threads)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-annotate-"))
    print(
        f"JPEGs 1280x960 in {work}; {args.labels} labels; {args.threads} threads; engine {args.engine}; "
        f"load average before: {os.getloadavg()[0]:.2f}"
    )
    print(
        f"{'template':28s} {'naive':>6s} {'naive1t':>7s} {'ours':>6s} {'ratio':>6s} {'cmd':>6s} {'ratio':>6s}"
        f"  dets naive/ours   (images/s; ratio = vs naive at {args.threads} threads)"
    )
    labels = [f"label{k}" for k in range(1, args.labels + 1)]
    for name in args.templates.split(","):
        n_images = args.images or TEMPLATES.get(name, 24)
        folder = work / f"images-{n_images}"
        paths = make_images(folder, n_images)
        torch.manual_seed(0)
        model_dir = work / f"model-{name}-{args.labels}"
        if not (model_dir / "model.pt").exists():
            save_model_dir(
                model_dir,
                build_model(name, len(labels) + 1, {"pretrained": False}),
                name,
                labels,
                {"pretrained": False},
            )
        base, base_det = naive(model_dir, paths, args.threshold, args.threads)
        base1, _ = naive(model_dir, paths, args.threshold, 1)
        s = ours(model_dir, folder, work / f"out-{name}.zip", args.threshold, args.engine, args.extra, args.threads)
        pipe = s["images_done"] / s["seconds"]
        cmd = s["images_done"] / s["wall"]
        print(
            f"{name:28s} {base:6.2f} {base1:7.2f} {pipe:6.2f} {pipe / base:5.2f}x {cmd:6.2f} {cmd / base:5.2f}x"
            f"  {base_det}/{s['annotations']}",
            flush=True,
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
