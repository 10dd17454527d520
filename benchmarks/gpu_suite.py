"""The GPU suite (issue 18): every GPU figure in one prepared run, each with its baseline
measured in the same run, printed and written as JSON. Run it through
``benchmarks/gpu_suite.sh`` (which finds the Python that has torch and our package).

Sections (``--only`` picks some):

- ``decode``: JPEG decode + resize to a model's input size, images/s: the annotate
  pipeline's CPU threads (PIL with reduced DCT scale, :func:`decode_image`) vs
  ``torchvision.io.decode_jpeg`` in batches on the device (nvJPEG on CUDA) with an
  antialiased resize there. Which one the pipeline should use is what this tells.
- ``annotate``: auto-annotation of ``--images`` synthetic 1280x960 JPEGs, end to end
  (``python -m jupyter_cvat_train annotate``: JPEG files in, CVAT zip out, the whole
  command's wall time), for SSDlite and Faster R-CNN R50 v2 with 91-label heads (random
  weights, seed 0), vs a naive loop (same model folder, one image at a time, PIL decode,
  fp32) timed on the first ``--naive-images`` (its rate; its time for all images is
  that rate extrapolated). Goals on one H200: < 15 s (SSDlite), < 60 s (R50), >= 3x naive.
- ``train``: training images/s of our training job (its ``train_time_s`` per epoch, as
  ``benchmarks/bench_train.py``) vs a bare torchvision loop (same model, data, batch,
  AMP) and the GPU memory peak of each (``torch.cuda.max_memory_allocated``). Goal >= 0.95x.
- ``bccd``: a training on BCCD (``--bccd``: a COCO export; seed 0, so a fixed split,
  ``pretrained: false``, ``--bccd-epochs``) and its mAP@[.5:.95] / mAP@.5, for later
  changes to compare against.
- ``torchrun``: a ``gpus: 1`` training through the multi-GPU launch path (torchrun, one
  rank, NCCL on CUDA / gloo on the CPU) on a small sample: it must succeed.

``--dry-run`` runs all of it on the CPU with tiny sizes and the small model alone (CI
runs it), so only the machinery is checked there; its figures mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # bench_annotate, bench_train
sys.path.insert(0, str(HERE.parent))

ANNOTATE = {  # template -> (goal seconds for all images on one H200, batch size)
    "ssdlite320-mobilenet-v3": (15.0, 64),
    "fasterrcnn-resnet50-fpn-v2": (60.0, 16),
}
TRAIN = {  # template -> (image_size, batch size) on the GPU
    "ssdlite320-mobilenet-v3": (320, 32),
    "fasterrcnn-resnet50-fpn-v2": (640, 8),
}
SPEEDUP_GOAL = 3.0
TRAIN_RATIO_GOAL = 0.95


def _images(work: Path, n: int, size: tuple[int, int], procs: int) -> list[Path]:
    """``n`` synthetic JPEGs of ``size`` (made in ``procs`` processes; kept between runs)."""
    folder = work / f"images-{size[0]}x{size[1]}"
    parts = [(folder / f"part{k}", len(range(k, n, procs)), size, k) for k in range(procs)]  # seed k each
    with ProcessPoolExecutor(procs) as pool:
        list(pool.map(_make_part, parts))
    paths = sorted(folder.rglob("*.jpg"))
    assert len(paths) == n, (len(paths), n)
    return paths


def _make_part(args) -> None:
    from bench_annotate import make_images

    folder, n, size, seed = args
    make_images(folder, n, size=size, seed=seed)


def _model_dir(work: Path, template: str, labels: int = 91) -> Path:
    import torch

    from jupyter_cvat_train.models import build_model, save_model_dir

    folder = work / f"model-{template}-{labels}"
    if not (folder / "model.pt").exists():
        torch.manual_seed(0)
        names = [f"label{k}" for k in range(1, labels)]  # + background = the 91 outputs of torchvision's COCO head
        save_model_dir(
            folder, build_model(template, labels, {"pretrained": False}), template, names, {"pretrained": False}
        )
    return folder


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bench_decode(paths: list[Path], device: str, workers: int, batch: int = 32) -> dict:
    """images/s of the pipeline's CPU-thread decode and of batched ``decode_jpeg`` on
    ``device``, both to SSDlite's 320x320 and Faster R-CNN's 800x1066 input sizes."""
    from jupyter_cvat_train.annotate.inputs import ImageSource
    from jupyter_cvat_train.annotate.pipeline import decode_image

    sources = [ImageSource(name=p.name, path=p) for p in paths]
    out = {}
    for name, size in (("320x320", (320, 320)), ("800x1066", (800, 1066))):
        t = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(decode_image, sources, [lambda h, w, size=size: size] * len(sources)))
        cpu = len(paths) / (time.perf_counter() - t)
        _decode_on(paths[:batch], size, device)  # warm-up (nvJPEG's handles, kernels)
        _sync(device)
        t = time.perf_counter()
        for i in range(0, len(paths), batch):
            _decode_on(paths[i : i + batch], size, device)
        _sync(device)
        dev = len(paths) / (time.perf_counter() - t)
        out[name] = {"cpu_threads_images_per_s": round(cpu, 1), "device_images_per_s": round(dev, 1)}
        print(f"  decode to {name}: CPU {workers} threads {cpu:8.1f} images/s, decode_jpeg on {device} {dev:8.1f}")
    return out


def _decode_on(paths: list[Path], size: tuple[int, int], device: str) -> list:
    """JPEG files -> uint8 CHW tensors of ``size`` on ``device``: one batched
    ``decode_jpeg`` call, then an antialiased bilinear resize of each image there."""
    import torch
    from torch.nn.functional import interpolate
    from torchvision.io import decode_jpeg, read_file

    images = decode_jpeg([read_file(str(p)) for p in paths], device=device)
    return [
        interpolate(im[None].float(), size=size, mode="bilinear", antialias=True).round_().to(torch.uint8)
        for im in images
    ]


def naive_rate(model_dir: Path, paths: list[Path], device: str, threshold: float) -> tuple[float, int]:
    """(images/s, detections >= threshold) of the naive loop: one image at a time, PIL
    decode, fp32 on ``device``; the first image is a warm-up, outside the clock."""
    import torch
    from PIL import Image
    from torchvision.transforms.functional import pil_to_tensor

    from jupyter_cvat_train.models import load_trained_model

    model = load_trained_model(model_dir, device=device).model.eval().to(device)

    def one(p):
        x = pil_to_tensor(Image.open(p).convert("RGB")).to(device).float() / 255
        return int((model([x])[0]["scores"] >= threshold).sum())  # .sum() to the CPU: synchronises

    with torch.no_grad():
        one(paths[0])
        t = time.perf_counter()
        dets = sum(one(p) for p in paths)
        return len(paths) / (time.perf_counter() - t), dets


def bench_annotate(work: Path, paths: list[Path], naive_n: int, device: str, templates: dict, threshold=0.5) -> dict:
    out = {}
    folder = paths[0].parent.parent
    for template, (goal_s, batch) in templates.items():
        model_dir = _model_dir(work, template)
        zip_path = work / f"annotations-{template}.zip"
        cmd = [sys.executable, "-m", "jupyter_cvat_train", "annotate", str(folder), "--model-dir", str(model_dir)]
        cmd += ["--output", str(zip_path), "--format", "cvat", "--threshold", str(threshold), "--device", device]
        cmd += ["--batch-size", str(batch), "--no-progress", "--overwrite"]
        t = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t
        if r.returncode:
            raise SystemExit(f"annotate failed ({template}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
        summary = json.loads(zip_path.with_name(zip_path.stem + ".summary.json").read_text())
        rate, dets = naive_rate(model_dir, paths[:naive_n], device, threshold)
        ours = len(paths) / wall
        row = {
            "images": len(paths),
            "seconds_end_to_end": round(wall, 2),
            "seconds_pipeline": round(summary["seconds"], 2),
            "images_per_s": round(ours, 1),
            "naive_images": naive_n,
            "naive_images_per_s": round(rate, 2),
            "naive_seconds_extrapolated": round(len(paths) / rate, 1),
            "speedup_vs_naive": round(ours / rate, 2),
            "goal_seconds": goal_s,
            "goal_speedup": SPEEDUP_GOAL,
            "annotations": summary["annotations"],
            "naive_detections_on_its_images": dets,
            "batch_size": summary.get("batch_size"),
            "decode_workers": summary.get("workers"),
        }
        out[template] = row
        print(
            f"  {template:28s} ours {wall:7.1f} s ({ours:7.1f} images/s; pipeline {summary['seconds']:.1f} s), "
            f"naive {rate:6.2f} images/s (all: {len(paths) / rate:7.1f} s): {ours / rate:5.2f}x "
            f"(goals < {goal_s:.0f} s, >= {SPEEDUP_GOAL:.0f}x)"
        )
    return out


def _run_train(work: Path, name: str, spec: dict, fn=None) -> tuple[dict, dict]:
    """Run a train job in this process; (status, metrics.json) or SystemExit with its message."""
    from jupyter_cvat_train.jobs.runtime import JobDir, run_job
    from jupyter_cvat_train.training import train_job

    job = work / name
    JobDir(job).create(spec)
    status = run_job(job, fn or train_job, handle_sigterm=False)
    if status["state"] != "succeeded":
        raise SystemExit(f"{name}: the training job {status['state']}: {status.get('message')}\n(see {job}/job.log)")
    return status, json.loads((job / "output" / "metrics.json").read_text())


def _peak_reset(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peak_mib(device: str) -> float | None:
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**20, 1) if device.startswith("cuda") else None


def bench_train(work: Path, data: Path, device: str, templates: dict, epochs: int, workers: int) -> dict:
    from bench_train import bare_loop

    from jupyter_cvat_train.models import parse_hyperparameters
    from jupyter_cvat_train.training.plan import make_plan

    out = {}
    amp = device.startswith("cuda")
    for template, (size, batch) in templates.items():
        user = {"pretrained": False, "epochs": epochs, "batch_size": batch, "image_size": size, "seed": 0}
        user |= {"num_workers": workers, "hflip": 0.0, "zoom_out": 0.0, "val_split": 10, "amp": amp}
        spec = {"kind": "train", "template": template, "dataset": str(data), "device": device, "parameters": user}
        plan = make_plan(spec, work, log=lambda m: None)
        params = parse_hyperparameters(user, template)
        _peak_reset(device)
        bare = bare_loop(plan.train_items, plan.labels, template, params, epochs, device=device, amp=amp)
        bare_peak = _peak_mib(device)
        _peak_reset(device)
        _, metrics = _run_train(work, f"train-{template}", spec)
        ours_peak = _peak_mib(device)
        hist = metrics["history"][1:]
        ours = sum(len(plan.train_items) / h["train_time_s"] for h in hist) / len(hist)
        out[template] = {
            "images": len(plan.train_items),
            "batch_size": batch,
            "image_size": size,
            "amp": amp,
            "ours_images_per_s": round(ours, 1),
            "bare_images_per_s": round(bare, 1),
            "ratio": round(ours / bare, 3),
            "goal_ratio": TRAIN_RATIO_GOAL,
            "ours_peak_gpu_mib": ours_peak,
            "bare_peak_gpu_mib": bare_peak,
        }
        print(
            f"  {template:28s} ours {ours:7.1f} images/s, bare {bare:7.1f}: {ours / bare:5.3f}x "
            f"(goal >= {TRAIN_RATIO_GOAL}); peak GPU memory ours {ours_peak} MiB, bare {bare_peak} MiB"
        )
    return out


def bench_bccd(work: Path, data: Path, device: str, template: str, epochs: int, workers: int, size: int) -> dict:
    user = {"pretrained": False, "epochs": epochs, "seed": 0, "num_workers": workers, "image_size": size}
    spec = {"kind": "train", "template": template, "dataset": str(data), "device": device, "parameters": user}
    t = time.perf_counter()
    status, metrics = _run_train(work, "bccd", spec)
    seconds = time.perf_counter() - t
    o = status["outputs"]
    row = {
        "dataset": data.name,
        "template": template,
        "epochs": epochs,
        "image_size": size,
        "seconds": round(seconds, 1),
    }
    row |= {"map": round(o["map"], 4), "map_50": round(o["map_50"], 4), "best_epoch": o.get("best_epoch")}
    print(
        f"  {data.name}: {template}, {epochs} epochs in {seconds:.0f} s: mAP@[.5:.95] {o['map']:.4f}, mAP@.5 {o['map_50']:.4f}"
    )
    return row


def bench_torchrun(work: Path, data: Path, device: str, workers: int) -> dict:
    from jupyter_cvat_train.training.distributed import run_torchrun

    user = {"pretrained": False, "epochs": 1, "batch_size": 8, "image_size": 320, "num_workers": workers}
    spec = {"kind": "train", "template": "ssdlite320-mobilenet-v3", "dataset": str(data), "device": device}
    spec["parameters"] = user
    t = time.perf_counter()
    status, _ = _run_train(work, "torchrun", spec, fn=lambda ctx: run_torchrun(ctx, 1, device))
    seconds = time.perf_counter() - t
    backend = "nccl" if device.startswith("cuda") else "gloo"
    row = {"state": status["state"], "ranks": 1, "backend": backend, "seconds": round(seconds, 1)}
    row |= {"map": round(status["outputs"]["map"], 4)}  # rank 0's outputs came back through torchrun
    print(f"  gpus: 1 through torchrun ({backend}): {status['state']} in {seconds:.0f} s")
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="the CPU, tiny sizes: checks the machinery only")
    ap.add_argument("--out", help="the JSON of the figures (default: $OUT/gpu_suite.json, else ./gpu_suite.json)")
    ap.add_argument("--workdir", help="where images, models and jobs go (default: a new temporary folder)")
    ap.add_argument("--only", default="decode,annotate,train,bccd,torchrun")
    ap.add_argument("--images", type=int, default=3550)
    ap.add_argument("--naive-images", type=int, default=200)
    ap.add_argument("--train-images", type=int, default=256)
    ap.add_argument("--train-epochs", type=int, default=3, help="per side; the first is a warm-up, not counted")
    ap.add_argument("--bccd", help="a BCCD COCO export (default: .gpu/ or ../shared/datasets/bccd/)")
    ap.add_argument("--bccd-template", default="fasterrcnn-mobilenet-v3-fpn")
    ap.add_argument("--bccd-epochs", type=int, default=20)
    ap.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="decode / loader workers")
    args = ap.parse_args()
    only = set(args.only.split(","))

    import torch

    from jupyter_cvat_train.datasets import generate_sample

    dry = args.dry_run
    device = "cpu" if dry else "cuda"
    if not dry and not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU is visible to torch: run with --dry-run on a machine without one")
    size = (320, 240) if dry else (1280, 960)
    n_images, naive_n = (4, 2) if dry else (args.images, args.naive_images)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="gpu-suite-"))
    work.mkdir(parents=True, exist_ok=True)
    out_path = Path(args.out or Path(os.environ.get("OUT") or ".") / "gpu_suite.json")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    figures: dict = {
        "dry_run": dry,
        "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    print(
        f"GPU suite on {figures['device']} (torch {torch.__version__}, {os.cpu_count()} CPUs){' DRY RUN' if dry else ''}"
    )
    t_all = time.perf_counter()
    loader_workers = 0 if dry else _loader_workers(args.workers)
    figures["loader_workers"] = loader_workers

    def section(name, fn):
        if name not in only:
            return
        print(f"[{name}]", flush=True)
        t = time.perf_counter()
        try:
            figures[name] = fn()
        except (Exception, SystemExit) as e:  # one run of the GPU machine: the other sections go on
            traceback.print_exc()
            figures[name] = {"error": f"{type(e).__name__}: {e}"[-2000:]}
            figures.setdefault("failed", []).append(name)
        figures.setdefault("seconds", {})[name] = round(time.perf_counter() - t, 1)
        out_path.write_text(json.dumps(figures, indent=2))  # what is done so far survives a timeout

    paths: list[Path] = []
    if only & {"decode", "annotate"}:
        paths = _images(work, n_images, size, procs=max(1, min(16, os.cpu_count() or 1)))
    section("decode", lambda: bench_decode(paths[: 8 if dry else 512], device, args.workers))
    # a dry run checks the machinery with the small model alone (the code is the same for both)
    annotate_templates = {"ssdlite320-mobilenet-v3": (ANNOTATE["ssdlite320-mobilenet-v3"][0], 2)} if dry else ANNOTATE
    section("annotate", lambda: bench_annotate(work, paths, naive_n, device, annotate_templates))

    sample = None
    if only & {"train", "torchrun", "bccd"}:
        w, h = (160, 120) if dry else (640, 480)
        n = 10 if dry else args.train_images
        sample = generate_sample(work / "sample.zip", images=n, seed=0, width=w, height=h)
    train_templates = {"ssdlite320-mobilenet-v3": (128, 4)} if dry else TRAIN
    section(
        "train",
        lambda: bench_train(work, sample, device, train_templates, 2 if dry else args.train_epochs, loader_workers),
    )

    bccd = _bccd_export(args.bccd)
    if dry:
        bccd = sample  # the machinery only
    if bccd is None:
        figures["bccd"] = {"skipped": "no BCCD export: give --bccd, or run `make gpu-carry` where ../shared is"}
    else:
        epochs, bccd_size = (1, 128) if dry else (args.bccd_epochs, 480)
        section(
            "bccd",
            lambda: bench_bccd(work, bccd, device, args.bccd_template, epochs, loader_workers, bccd_size),
        )
    section("torchrun", lambda: bench_torchrun(work, sample, device, min(2, loader_workers)))

    figures["seconds_total"] = round(time.perf_counter() - t_all, 1)
    out_path.write_text(json.dumps(figures, indent=2))
    print(f"all in {figures['seconds_total']:.0f} s; figures in {out_path}")
    if figures.get("failed"):
        raise SystemExit(f"failed: {', '.join(figures['failed'])} (see above and the JSON)")


def _loader_workers(wanted: int) -> int:
    """DataLoader worker processes for the trainings: ``wanted``, or 0 where /dev/shm (which
    the workers hand batches through) has under 1 GiB free, as in some containers, where
    workers die of a bus error."""
    try:
        free = shutil.disk_usage("/dev/shm").free
    except OSError:
        free = 0
    if free < 2**30:
        print(f"  /dev/shm has {free / 2**20:.0f} MiB free: the trainings load their data in their own process")
        return 0
    return wanted


def _bccd_export(given: str | None) -> Path | None:
    """``--bccd``, else the BCCD COCO export in .gpu/ (``make gpu-carry``) or ../shared, else None."""
    if given:
        if not Path(given).is_file():
            raise SystemExit(f"--bccd {given}: no such file")
        return Path(given)
    root = HERE.parent
    for p in (root / ".gpu" / "bccd-coco-1.0.zip", root.parent / "shared" / "datasets" / "bccd" / "bccd-coco-1.0.zip"):
        if p.is_file():
            return p
    return None


if __name__ == "__main__":
    main()
