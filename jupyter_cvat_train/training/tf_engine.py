"""The TensorFlow framework's training: a checked plan trained with Keras ``model.fit``.

:func:`train_tensorflow` is the ``train`` of ``models.Framework("tensorflow")``; the train
job (:mod:`.job`) hands it the same :class:`.plan.Plan` as the PyTorch loop, and it writes
the same output contract:

- a ``plan`` event, ``progress`` events (steps) and a ``metrics`` event per epoch;
- TensorBoard scalars under ``output/tensorboard`` (train/loss, train/learning_rate,
  epoch/loss, val/mAP, val/mAP@.5, val_AP/<label>);
- COCO mAP on the plan's validation split with :func:`.evaluate.coco_metrics`, the
  evaluator the PyTorch models use, boxes in the images' own pixels;
- ``checkpoints/last.*`` every epoch and ``best.*`` when mAP improves
  (:mod:`.tf_checkpoints`), ``metrics.json``, and the best epoch's model in
  ``output/model/`` (:func:`jupyter_cvat_train.models.keras_retinanet.save_model_dir`);
- a SIGTERM stops the fit after the current step; last.* is saved, then JobCancelled.

Data: tf.data over the plan's items, images decoded with PIL (in tf.data's threads),
resized to the square input side, cached in memory when they fit in 1 GiB, flipped
(``hflip``/``vflip``) with their boxes, normalized (ImageNet mean and deviation).
``num_gpus`` (``num_clones``) > 1 trains under ``tf.distribute.MirroredStrategy``: over
that many GPUs with ``device cuda``, over as many logical CPU devices with ``device cpu``.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import numpy as np

from ..jobs.runtime import JobCancelled, JobContext, JobError, write_json_atomic
from ..models import keras_retinanet as kr
from ..models.schema import schedule_milestones
from .plan import Plan, run_summary

PROGRESS_INTERVAL_S = 0.5
CACHE_LIMIT_BYTES = 1 << 30
# Common hyperparameters the TensorFlow family does not use (torchvision transforms and model options).
IGNORED_KEYS = ("color_jitter", "zoom_out", "trainable_backbone_layers")


def train_tensorflow(plan: Plan, ctx: JobContext) -> dict:
    """The tensorflow framework's train function (see the module docstring). Returns the
    job outputs (model_dir, map, map_50, best_epoch, epochs, message); raises JobError for
    what the plan could not check (no GPU for TensorFlow, a diverging loss), JobCancelled
    after a SIGTERM (last.* saved)."""
    return KerasTrainer(plan, ctx).fit()


def decode_resized(path, side) -> np.ndarray:
    """uint8 (side, side, 3) RGB of the image at ``path`` (bytes or str), resized with PIL
    (JPEG drafted at a reduced DCT scale first)."""
    from PIL import Image

    side = int(side)
    path = path.decode() if isinstance(path, bytes) else str(path)
    with Image.open(path) as im:
        if im.format == "JPEG":
            im.draft("RGB", (side, side))
        im = im.convert("RGB")
        if im.size != (side, side):
            im = im.resize((side, side), Image.BILINEAR)
        return np.asarray(im, dtype=np.uint8)


def _targets(items, labels: list[str], side: int) -> tuple[np.ndarray, np.ndarray]:
    """(boxes (N, M, 4) float32 xyxy in input pixels, class ids (N, M) int32 0..K-1), padded
    with -1 to the largest number of boxes M of an image."""
    index = {name: k for k, name in enumerate(labels)}
    m = max([len(it.annotations) for it in items] + [1])
    boxes = np.full((len(items), m, 4), -1.0, dtype=np.float32)
    classes = np.full((len(items), m), -1, dtype=np.int32)
    for i, it in enumerate(items):
        sx, sy = side / float(it.width), side / float(it.height)
        for j, a in enumerate(it.annotations):
            x1, y1, x2, y2 = a.bbox
            boxes[i, j] = (x1 * sx, y1 * sy, x2 * sx, y2 * sy)
            classes[i, j] = index[a.label]
    return boxes, classes


class KerasTrainer:
    """Runs a :class:`Plan` of the tensorflow framework in this process."""

    def __init__(self, plan: Plan, ctx: JobContext):
        self.plan, self.ctx, self.p = plan, ctx, plan.params
        self.out = Path(ctx.output_dir)
        self.side = kr.input_size(plan.template, int(self.p["image_size"]))

    # ---- setup -------------------------------------------------------------------------
    def _runtime(self):
        """Threads, seeds and the distribution strategy (before TensorFlow runs anything)."""
        from .engine import usable_cpus

        tf, keras, _ = kr.import_keras()
        p, n = self.p, int(self.plan.gpus)
        threads = int(p["threads"]) or usable_cpus()
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(max(2, min(threads, 4)))
        except RuntimeError:  # already initialized in this process (a second run in-process)
            pass
        keras.utils.set_random_seed(int(p["seed"]))
        if self.plan.device.startswith("cuda"):
            gpus = tf.config.list_physical_devices("GPU")
            if len(gpus) < n:
                raise JobError(
                    f"device {self.plan.device} with {n} GPU(s) was asked for, but TensorFlow sees {len(gpus)} GPU(s) "
                    f"here (tensorflow-cpu has no CUDA): install tensorflow[and-cuda] with the same version, or use "
                    f"device cpu"
                )
            index = int(self.plan.device.split(":")[1]) if ":" in self.plan.device else 0
            devices = [f"/gpu:{i}" for i in range(n)] if n > 1 else [f"/gpu:{index}"]
        else:
            devices = ["/cpu:0"]
            if n > 1:
                cpus = tf.config.list_physical_devices("CPU")
                try:
                    tf.config.set_logical_device_configuration(
                        cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(n)]
                    )
                except RuntimeError:
                    pass
                devices = [d.name for d in tf.config.list_logical_devices("CPU")][:n]
        if len(devices) > 1:
            strategy = tf.distribute.MirroredStrategy(devices=devices)
        else:
            strategy = tf.distribute.OneDeviceStrategy(devices[0])
        return tf, keras, strategy, devices

    def _optimizer(self, keras):
        p = self.p
        lr = float(p["learning_rate"])
        if p["optimizer"] == "adamw":
            return keras.optimizers.AdamW(lr, weight_decay=float(p["weight_decay"]), global_clipnorm=10.0)
        return keras.optimizers.SGD(
            lr, momentum=float(p["momentum"]), weight_decay=float(p["weight_decay"]) or None, global_clipnorm=10.0
        )

    def _build(self, keras):
        """The compiled model: resumed, fine-tuned, pretrained backbone or from scratch."""
        plan, p = self.plan, self.p
        try:
            model, how = kr.build_retinanet(
                plan.template,
                len(plan.labels) + 1,
                {**p, "pretrained": bool(p["pretrained"]) and plan.resume is None and plan.finetune is None},
            )
        except kr.PretrainedWeightsUnavailable as e:
            raise JobError(str(e)) from None
        model.compile(optimizer=self._optimizer(keras), box_loss="auto", classification_loss="auto")
        if plan.resume is not None:
            kr.load_weights(model, plan.resume["weights_file"])
        elif plan.finetune is not None:
            src = plan.finetune
            if src.labels == plan.labels:
                kr.load_weights(model, src.path)
                self.ctx.log(f"fine-tuning from {src.path}: all weights loaded")
            else:
                kr.load_weights(model, src.path, skip_mismatch=True)
                self.ctx.warn(
                    f"fine-tuning from {src.path}: its labels {src.labels} differ from the export's {plan.labels}, "
                    f"so the label head was rebuilt (its last layer re-initialized); the other weights were loaded"
                )
        else:
            self.ctx.log(f"{plan.template}: {how}")
        return model

    def _restore_optimizer(self, model) -> None:
        """Resume: the optimizer's variables (step count, moments) from the checkpoint."""
        ck = self.plan.resume
        if ck is None:
            return
        opt = model.optimizer
        opt.build(model.trainable_variables)
        with np.load(ck["optimizer_file"]) as data:
            arrays = [data[f"v{i}"] for i in range(len(data.files))]
        if len(arrays) != len(opt.variables) or any(
            tuple(a.shape) != tuple(v.shape) for a, v in zip(arrays, opt.variables)
        ):
            raise JobError(
                f"cannot resume: {ck['optimizer_file']} does not fit {self.plan.template}'s optimizer "
                f"({len(arrays)} arrays for {len(opt.variables)} variables; was the optimizer changed?)"
            )
        for v, a in zip(opt.variables, arrays):
            v.assign(a)

    def _datasets(self, tf):
        """(training dataset: endless, shuffled, augmented batches; validation dataset:
        (images, item index) batches in the order of plan.val_items; the training images
        in the same form, for precise BatchNorm statistics)."""
        plan, p, side = self.plan, self.p, self.side
        bs = int(p["batch_size"]) * max(1, int(plan.gpus))  # batch_size is per GPU (replica), as with DDP
        mean, std = tf.constant(kr.IMAGENET_MEAN), tf.constant(kr.IMAGENET_STD)

        def load(path):
            img = tf.numpy_function(decode_resized, [path, side], tf.uint8, stateful=False)
            img.set_shape((side, side, 3))
            return img

        def normalize(img):
            return (tf.cast(img, tf.float32) - mean) / std

        boxes, classes = _targets(plan.train_items, plan.labels, side)
        paths = [str(it.image_path) for it in plan.train_items]
        ds = tf.data.Dataset.from_tensor_slices((paths, boxes, classes))
        ds = ds.map(lambda f, b, c: (load(f), b, c), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        if len(paths) * side * side * 3 <= CACHE_LIMIT_BYTES:
            ds = ds.cache()
        ds = ds.shuffle(len(paths), seed=int(p["seed"]), reshuffle_each_iteration=True).repeat()
        hflip, vflip = float(p["hflip"]), float(p["vflip"])

        def augment(img, b, c):
            valid = tf.expand_dims(c >= 0, -1)
            if hflip > 0:
                flip = tf.random.uniform(()) < hflip
                img = tf.cond(flip, lambda: tf.image.flip_left_right(img), lambda: img)
                fb = tf.stack([side - b[:, 2], b[:, 1], side - b[:, 0], b[:, 3]], axis=-1)
                b = tf.where(tf.logical_and(flip, valid), fb, b)
            if vflip > 0:
                flip = tf.random.uniform(()) < vflip
                img = tf.cond(flip, lambda: tf.image.flip_up_down(img), lambda: img)
                fb = tf.stack([b[:, 0], side - b[:, 3], b[:, 2], side - b[:, 1]], axis=-1)
                b = tf.where(tf.logical_and(flip, valid), fb, b)
            return normalize(img), {"boxes": b, "labels": c}

        train = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE).batch(bs, drop_remainder=True)
        train = train.prefetch(tf.data.AUTOTUNE)

        def plain(files):
            d = tf.data.Dataset.from_tensor_slices((files, np.arange(len(files), dtype=np.int64)))
            d = d.map(lambda f, i: (normalize(load(f)), i), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            return d.batch(bs).prefetch(tf.data.AUTOTUNE)

        return train, plain([str(it.image_path) for it in plan.val_items]), plain(paths)

    # ---- run ---------------------------------------------------------------------------
    def fit(self) -> dict:
        tf, keras, strategy, devices = self._runtime()
        plan = self.plan
        with strategy.scope():
            model = self._build(keras)
            self._restore_optimizer(model)
        train_ds, val_ds, bn_ds = self._datasets(tf)
        cb = _make_callback_class()(self, model, val_ds, bn_ds, tf)
        self._report_plan(cb, devices)
        try:
            model.fit(
                train_ds,
                epochs=plan.epochs,
                initial_epoch=cb.start_epoch,
                steps_per_epoch=plan.steps_per_epoch,
                callbacks=[cb],
                shuffle=False,  # tf.data shuffles (seeded); Keras warns that it cannot
                verbose=0,
            )
        finally:
            cb.writer.flush()
        if cb.cancelled_in is not None:
            epoch, during = cb.cancelled_in
            cb.save_checkpoint("last", epoch if during else epoch + 1)
            raise JobCancelled(
                f"cancelled by request {'during' if during else 'after'} epoch {epoch + 1}; last checkpoint saved "
                f"(resume with --resume)"
            )
        cb.writer.close()
        return self._finish(model, cb)

    def _report_plan(self, cb, devices: list[str]) -> None:
        plan, p, ctx = self.plan, self.p, self.ctx
        device = ", ".join(devices)
        ctx.event(
            "plan",
            template=plan.template,
            framework="tensorflow",
            epochs=plan.epochs,
            steps_per_epoch=plan.steps_per_epoch,
            train_images=len(plan.train_items),
            val_images=len(plan.val_items),
            labels=plan.labels,
            device=device,
            gpus=len(devices),
            dropped=plan.dropped,
            notes=plan.notes,
        )
        ctx.log(
            f"{plan.template} (TensorFlow): {len(plan.train_items)} training / {len(plan.val_items)} validation "
            f"images, {plan.epochs} epochs x {plan.steps_per_epoch} steps, batch_size {p['batch_size']}, input "
            f"{self.side}x{self.side}, device {device}"
            + (f" (MirroredStrategy over {len(devices)} devices)" if len(devices) > 1 else "")
        )
        if cb.start_epoch:
            ctx.log(f"resumed after epoch {cb.start_epoch} (step {cb.step}); training to epoch {plan.epochs}")
        unused = [k for k in IGNORED_KEYS if p.get(k) not in (None, 0, 0.0, False)]
        if unused:
            ctx.warn(f"{', '.join(unused)}: no effect on {plan.template} (the TensorFlow family), ignored")

    def _finish(self, model, cb) -> dict:
        plan = self.plan
        history, best_epoch = cb.history, cb.best_epoch
        final = model.get_weights()
        if cb.best_weights is not None:
            model.set_weights(cb.best_weights)
        meta, outputs = run_summary(plan, history, best_epoch)
        model_dir = kr.save_model_dir(self.out / "model", model, plan.template, plan.labels, plan.params, meta)
        model.set_weights(final)
        return {"model_dir": str(model_dir), **outputs}


def _make_callback_class():
    import keras

    from .engine import lr_factor

    class JobCallback(keras.callbacks.Callback):
        """The job's side of ``model.fit``: learning rate per step, progress, cancel, and
        per epoch precise BN, evaluation, metrics, TensorBoard and checkpoints."""

        def __init__(self, trainer: KerasTrainer, model, val_ds, bn_ds, tf):
            super().__init__()
            self.t, self.detector, self.val_ds, self.bn_ds, self.tf = trainer, model, val_ds, bn_ds, tf
            plan, p = trainer.plan, trainer.p
            self.total = plan.steps_per_epoch * plan.epochs
            self.warmup = min(int(p["warmup_iters"]), plan.steps_per_epoch)
            self.milestones = schedule_milestones(p)
            self.base_lr = float(p["learning_rate"])
            self.writer = tf.summary.create_file_writer(str(trainer.out / "tensorboard"))
            ck = plan.resume or {}
            self.start_epoch, self.step = int(ck.get("epoch", 0)), int(ck.get("step", 0))
            self.best_map, self.best_epoch = float(ck.get("best_map", -1.0)), int(ck.get("best_epoch", 0))
            self.history = list(ck.get("history") or [])
            self.best_weights = None
            self.cancelled_in: tuple[int, bool] | None = None
            self.last_report = 0.0
            self.epoch_t0 = time.monotonic()
            self.predict = tf.function(lambda x: model(x, training=False), reduce_retracing=True)

        # learning rate, progress and cancel, per step
        def on_train_batch_begin(self, batch, logs=None):
            p = self.t.p
            f = lr_factor(
                self.step, total=self.total, warmup=self.warmup, schedule=p["lr_schedule"], milestones=self.milestones
            )
            self.detector.optimizer.learning_rate.assign(self.base_lr * f)

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch
            self.epoch_t0 = time.monotonic()

        def on_train_batch_end(self, batch, logs=None):
            self.step += 1
            loss = float((logs or {}).get("loss", float("nan")))
            if not math.isfinite(loss):
                raise JobError(
                    f"the loss became {loss} at epoch {self.epoch + 1}, step {batch + 1}: training diverged; lower "
                    f"learning_rate (now {self.base_lr:g}) or check the boxes of the export"
                )
            now = time.monotonic()
            if now - self.last_report >= PROGRESS_INTERVAL_S or self.step == self.total:
                self.last_report = now
                lr = float(self.detector.optimizer.learning_rate.numpy())
                with self.writer.as_default():
                    self.tf.summary.scalar("train/loss", loss, step=self.step)
                    self.tf.summary.scalar("train/learning_rate", lr, step=self.step)
                self.t.ctx.progress(
                    self.step, self.total, "steps", epoch=self.epoch + 1, epochs=self.t.plan.epochs,
                    loss=round(loss, 4), lr=lr,
                )  # fmt: skip
            if self.t.ctx.cancelled.is_set():
                self.cancelled_in = (self.epoch, True)
                self.detector.stop_training = True

        def on_epoch_end(self, epoch, logs=None):
            if self.cancelled_in is not None:
                return
            train_time = time.monotonic() - self.epoch_t0
            t, plan = self.t, self.t.plan
            self._precise_bn()
            metrics = self.evaluate()
            if metrics is None:  # a cancel arrived during the evaluation
                self.cancelled_in = (epoch, False)
                self.detector.stop_training = True
                return
            loss = float((logs or {}).get("loss", float("nan")))
            record = {
                "epoch": epoch + 1,
                "step": self.step,
                "train_time_s": round(train_time, 2),
                "images_per_s": round(
                    plan.steps_per_epoch * int(t.p["batch_size"]) * max(1, int(plan.gpus)) / max(train_time, 1e-9), 2
                ),
                "lr": float(self.detector.optimizer.learning_rate.numpy()),
                "losses": {"loss": loss},
                **{k: metrics[k] for k in ("map", "map_50", "map_75", "per_label")},
            }
            self.history.append(record)
            with self.writer.as_default():
                self.tf.summary.scalar("epoch/loss", loss, step=epoch + 1)
                self.tf.summary.scalar("val/mAP", metrics["map"], step=epoch + 1)
                self.tf.summary.scalar("val/mAP@.5", metrics["map_50"], step=epoch + 1)
                for name, ap in metrics["per_label"].items():
                    if ap is not None:
                        self.tf.summary.scalar(f"val_AP/{name}", ap, step=epoch + 1)
            self.writer.flush()
            t.ctx.event(
                "metrics",
                epoch=epoch + 1,
                epochs=plan.epochs,
                loss=loss,
                map=metrics["map"],
                map_50=metrics["map_50"],
                map_75=metrics["map_75"],
                per_label=metrics["per_label"],
            )
            t.ctx.log(
                f"epoch {epoch + 1}/{plan.epochs}: loss {loss:.4f}, mAP@[.5:.95] {metrics['map']:.4f}, "
                f"mAP@.5 {metrics['map_50']:.4f} ({train_time:.1f} s)"
            )
            if metrics["map"] > self.best_map:
                self.best_map, self.best_epoch = metrics["map"], epoch + 1
                self.best_weights = self.detector.get_weights()
                self.save_checkpoint("best", epoch + 1)
            self.save_checkpoint("last", epoch + 1)
            self._write_metrics(metrics.get("evaluator"))
            if t.ctx.cancelled.is_set() and epoch + 1 < plan.epochs:
                self.cancelled_in = (epoch, False)
                self.detector.stop_training = True

        # per epoch
        def _precise_bn(self) -> None:
            n = int(self.t.p["precise_bn_batches"])
            if n <= 0:
                return
            kr.recompute_batchnorm_stats(self.detector, (x for x, _ in self.bn_ds.take(n)))

        def evaluate(self) -> dict | None:
            """COCO metrics of the model on the validation split (None when cancelled)."""
            from .evaluate import coco_metrics

            plan = self.t.plan
            kr.set_decoder(self.detector, 0.05, int(self.t.p["detections_per_img"]))
            side = self.t.side
            dets = []
            for x, idx in self.val_ds:
                if self.t.ctx.cancelled.is_set():
                    return None
                raw = self.predict(x)
                for i, (boxes, scores, cls) in zip(idx.numpy(), kr.decode(self.detector, raw, x)):
                    it = plan.val_items[int(i)]
                    sx, sy = it.width / side, it.height / side
                    for b, s, c in zip(boxes, scores, cls):
                        dets.append(
                            {
                                "image_id": int(i),
                                "category_id": int(c),
                                "score": float(s),
                                "bbox": [
                                    float(b[0] * sx),
                                    float(b[1] * sy),
                                    float((b[2] - b[0]) * sx),
                                    float((b[3] - b[1]) * sy),
                                ],
                            }
                        )
            sizes = [(int(it.height), int(it.width)) for it in plan.val_items]
            return coco_metrics(plan.val_items, plan.labels, sizes, dets)

        def _write_metrics(self, evaluator) -> None:
            plan, history = self.t.plan, self.history
            best = next((h for h in history if h["epoch"] == self.best_epoch), None)
            write_json_atomic(
                self.t.out / "metrics.json",
                {
                    "template": plan.template,
                    "framework": "tensorflow",
                    "labels": plan.labels,
                    "epochs": plan.epochs,
                    "evaluator": evaluator,
                    "primary": "bbox",
                    "best_epoch": self.best_epoch,
                    "best": best,
                    "final": history[-1] if history else None,
                    "history": history,
                },
            )

        def save_checkpoint(self, name: str, epoch_done: int) -> None:
            """checkpoints/<name>.weights.h5, .optimizer.npz, then .json (module docstring of .tf_checkpoints)."""
            plan = self.t.plan
            folder = self.t.out / "checkpoints"
            folder.mkdir(parents=True, exist_ok=True)
            tmp_w = folder / f".{name}.tmp.weights.h5"
            self.detector.save_weights(str(tmp_w), overwrite=True)
            os.replace(tmp_w, folder / f"{name}.weights.h5")
            tmp_o = folder / f".{name}.tmp.optimizer.npz"
            with open(tmp_o, "wb") as f:
                np.savez(f, **{f"v{i}": np.asarray(v.numpy()) for i, v in enumerate(self.detector.optimizer.variables)})
            os.replace(tmp_o, folder / f"{name}.optimizer.npz")
            write_json_atomic(
                folder / f"{name}.json",
                {
                    "format_version": 1,
                    "kind": "checkpoint",
                    "framework": "tensorflow",
                    "template": plan.template,
                    "task": plan.task,
                    "labels": plan.labels,
                    "params": plan.params,
                    "epoch": epoch_done,
                    "step": self.step,
                    "best_map": self.best_map,
                    "best_epoch": self.best_epoch,
                    "history": self.history,
                    "dataset_fingerprint": plan.dataset_fingerprint,
                },
            )

    return JobCallback
