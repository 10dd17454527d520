"""Training throughput: our training job vs a bare torchvision loop (or, with
``--framework tensorflow``, a bare Keras ``model.fit``), in the same run.

Both train the same model (same template, image size, random init) on the same images
with the same batch size, loader workers and torch threads. The bare loop is the
minimum a user would write (PIL decode, to_tensor, SGD, no evaluation, no logging).
Our figure is the training part of each epoch as the job records it (metrics.json
``train_time_s``; evaluation, checkpoints and TensorBoard are outside it). The first
epoch of each side is a warm-up and is not counted.

    .venv/bin/python benchmarks/bench_train.py [--data EXPORT] [--images 64] [--epochs 3]
        [--template ssdlite320-mobilenet-v3] [--batch-size 8] [--image-size 192] [--workers 0]
    .venv/bin/python benchmarks/bench_train.py --framework tensorflow [--template retinanet-tiny-keras]

With ``--framework tensorflow`` the bare side is ``model.fit`` of the same KerasHub model
(same template, input size, optimizer, batch size) on the same images decoded once into
memory, with no callbacks; ours is the tensorflow job (tf.data, learning-rate schedule,
progress events, TensorBoard), its ``train_time_s`` per epoch as above. The bare fit runs
before and after our job, and the ratio is against the mean of the two (load drifts).

Prints images/s of both and the ratio ours / bare (goal: >= 0.9).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def bare_loop(items, labels, template, params, epochs: int, device: str = "cpu", amp: bool = False) -> float:
    """images/s of a plain torchvision training loop over ``items`` (epochs after the first),
    on ``device``; with ``amp`` (CUDA) under float16 autocast with a gradient scaler, as
    PyTorch's AMP recipe has it."""
    import numpy as np
    from PIL import Image

    from jupyter_cvat_train.models import build_model

    ids = {n: k + 1 for k, n in enumerate(labels)}

    class DS(torch.utils.data.Dataset):
        def __len__(self):
            return len(items)

        def __getitem__(self, i):
            it = items[i]
            img = torch.from_numpy(np.asarray(Image.open(it.image_path).convert("RGB")).copy()).permute(2, 0, 1)
            return img.float() / 255, {
                "boxes": torch.tensor([a.bbox for a in it.annotations]).reshape(-1, 4),
                "labels": torch.tensor([ids[a.label] for a in it.annotations], dtype=torch.int64),
            }

    torch.manual_seed(0)
    model = build_model(template, len(labels) + 1, params).to(device)
    model.train()
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    opt = torch.optim.SGD(model.parameters(), lr=params["learning_rate"], momentum=0.9, weight_decay=1e-4)
    bs = params["batch_size"]
    loader = torch.utils.data.DataLoader(
        DS(),
        batch_size=bs,
        shuffle=True,
        num_workers=params["num_workers"],
        collate_fn=lambda b: tuple(zip(*b)),
        drop_last=len(items) % bs == 1,
        pin_memory=device != "cpu",
    )
    rates = []
    for epoch in range(epochs):
        t0, n = time.perf_counter(), 0
        for images, targets in loader:
            images = [im.to(device, non_blocking=True) for im in images]
            targets = [{k: v.to(device, non_blocking=True) for k, v in t.items()} for t in targets]
            with torch.autocast(torch.device(device).type, enabled=amp):
                loss = sum(model(images, targets).values())
            opt.zero_grad()
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            n += len(images)
        if device != "cpu":
            torch.cuda.synchronize()
        if epoch:
            rates.append(n / (time.perf_counter() - t0))
    return sum(rates) / len(rates)


def bare_keras_fit(items, labels, template, params, epochs: int) -> float:
    """images/s of a plain ``model.fit`` of the template's Keras model (epochs after the first)."""
    import numpy as np

    from jupyter_cvat_train.models import keras_retinanet as kr
    from jupyter_cvat_train.training.tf_engine import _targets, decode_resized

    tf, keras, _ = kr.import_keras()
    side = kr.input_size(template, int(params["image_size"]))
    x = kr.preprocess(np.stack([decode_resized(str(it.image_path), side) for it in items]))
    boxes, classes = _targets(items, labels, side)
    keras.utils.set_random_seed(0)
    model, _ = kr.build_retinanet(template, len(labels) + 1, params)
    model.compile(
        optimizer=keras.optimizers.AdamW(params["learning_rate"], weight_decay=params["weight_decay"]),
        box_loss="auto",
        classification_loss="auto",
    )
    times = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.t0)

    bs = int(params["batch_size"])
    steps = len(items) // bs
    model.fit(
        x[: steps * bs],
        {"boxes": boxes[: steps * bs], "labels": classes[: steps * bs]},
        batch_size=bs,
        epochs=epochs,
        shuffle=True,
        callbacks=[Clock()],
        verbose=0,
    )
    return sum(steps * bs / t for t in times[1:]) / len(times[1:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="a CVAT export (default: a generated sample)")
    ap.add_argument("--images", type=int, default=64, help="images in the generated sample")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--framework", choices=("pytorch", "tensorflow"), default="pytorch")
    ap.add_argument("--template", help="default: ssdlite320-mobilenet-v3 (pytorch), retinanet-tiny-keras (tensorflow)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--image-size", type=int, help="default: 192 (pytorch), 128 (tensorflow)")
    ap.add_argument("--workers", type=int, default=0)
    args = ap.parse_args()
    tf_side = args.framework == "tensorflow"
    args.template = args.template or ("retinanet-tiny-keras" if tf_side else "ssdlite320-mobilenet-v3")
    args.image_size = args.image_size or (128 if tf_side else 192)

    from jupyter_cvat_train.datasets import generate_sample
    from jupyter_cvat_train.jobs.runtime import JobDir, run_job
    from jupyter_cvat_train.models import parse_hyperparameters
    from jupyter_cvat_train.training import train_job
    from jupyter_cvat_train.training.plan import make_plan

    work = Path(tempfile.mkdtemp(prefix="bench-train-"))
    data = Path(args.data) if args.data else generate_sample(work / "sample.zip", images=args.images, seed=0)
    user = {
        "pretrained": False,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "image_size": args.image_size,
        "num_workers": args.workers,
        "hflip": 0.0,
        "zoom_out": 0.0,
        "val_split": 10,
    }
    spec = {"kind": "train", "template": args.template, "dataset": str(data), "parameters": user}
    plan = make_plan(spec, work, log=lambda m: None)
    params = parse_hyperparameters(user, args.template)
    if tf_side:
        import tensorflow as tf

        print(
            f"tensorflow {tf.__version__}, {args.template}, {len(plan.train_items)} training images, "
            f"batch {args.batch_size}, size {args.image_size}, {args.epochs} epochs (first = warm-up)"
        )
        bare = bare_keras_fit(plan.train_items, plan.labels, args.template, params, args.epochs)
        print(f"bare keras model.fit  : {bare:8.2f} images/s")
    else:
        print(
            f"torch {torch.__version__}, threads {torch.get_num_threads()}, {args.template}, "
            f"{len(plan.train_items)} training images, batch {args.batch_size}, size {args.image_size}, "
            f"workers {args.workers}, {args.epochs} epochs (first = warm-up)"
        )
        bare = bare_loop(plan.train_items, plan.labels, args.template, params, args.epochs)
        print(f"bare torchvision loop : {bare:8.2f} images/s")
    job = work / "job"
    JobDir(job).create(spec)
    status = run_job(job, train_job, handle_sigterm=False)
    if status["state"] != "succeeded":
        sys.exit(f"our job failed: {status['message']}")
    hist = json.loads((job / "output" / "metrics.json").read_text())["history"][1:]
    if tf_side:  # steps x batch: the tensorflow job draws whole batches
        ours = sum(h["images_per_s"] for h in hist) / len(hist)
    else:
        ours = sum(len(plan.train_items) / h["train_time_s"] for h in hist) / len(hist)
    print(f"our training job      : {ours:8.2f} images/s")
    if tf_side:  # a loaded machine's speed drifts: the bare fit again after ours, the ratio against the mean
        again = bare_keras_fit(plan.train_items, plan.labels, args.template, params, args.epochs)
        print(f"bare keras model.fit  : {again:8.2f} images/s (again, after our job)")
        bare = (bare + again) / 2
    print(f"ratio ours / bare     : {ours / bare:8.3f}  (goal >= 0.9)")


if __name__ == "__main__":
    main()
