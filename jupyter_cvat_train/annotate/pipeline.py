"""The annotate pipeline: decode in parallel, infer in batches, post-process and write.

Stages (each overlaps the others):

1. decode: a thread pool (``workers`` threads; PIL releases the GIL while decoding)
   reads each image, decodes JPEGs at a reduced DCT scale when the model works at a
   smaller size (``Image.draft``: 1/2, 1/4 or 1/8, never below the model's input
   size), and resizes to the model's input size (PIL bilinear with antialiasing), so
   that the model's own resize is a no-op;
2. inference: batches of ``batch_size`` images through the engine, in the main
   thread; a batch that fails is retried image by image, so one bad image fails alone;
3. post-processing (a thread): threshold, label mapping, masks to polygons, boxes
   scaled back to original image pixels, previews.

Output: the annotation zip, written atomically when all images are done, or, after a
cancel (SIGTERM), a partial zip ``<stem>.partial<suffix>`` holding the images done so
far; plus ``<stem>.summary.json`` beside it (the summary dict, also the job's outputs).
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..datasets.geometry import DEFAULT_TOLERANCE, mask_to_polygons
from ..datasets.model import Annotation
from ..jobs.runtime import JobCancelled, JobContext, JobError
from ..models.device import resolve_device
from .engine import Detections
from .inputs import ImageSource, InputError, open_input
from .mapping import LabelMapping, MappingError, build_mapping, parse_map_pairs
from .outputs import OutputError, OutputPlan, plan_outputs, write_json
from .preview import preview_name, render_preview
from .writers import FORMATS, AnnotatedImage, write_annotations

ENGINES = ("torch", "onnx")  # torch, or ONNX Runtime on the CPU (:mod:`.onnx_engine`)


@dataclass
class AnnotateOptions:
    """The annotate job spec (``job.json``), with defaults.

    images: folder, zip of images or CVAT export. model_dir (alias ``model``): a trained
    model folder (model.pt, classes.csv, model.json). output: the zip to write (default
    ``<job>/output/annotations.zip``). format: coco | cvat | yolo. threshold: minimum
    score in [0, 1]. max_detections: per image. mapping: {model label: target label}.
    keep_existing: keep an export's annotations (else they are replaced). preview:
    number of preview PNGs. engine: torch | onnx. device: auto | cpu | cuda[:N].
    batch_size: images per inference call. workers: decode threads (0 = automatic).
    tolerance: polygon simplification, pixels (see :mod:`..datasets.geometry`). overwrite: replace
    existing output files (never the input; see :mod:`.outputs`).
    """

    images: str
    model_dir: str
    output: str | None = None
    format: str = "coco"
    threshold: float = 0.5
    max_detections: int = 100
    mapping: dict = field(default_factory=dict)
    keep_existing: bool = False
    preview: int = 0
    engine: str = "torch"
    device: str = "auto"
    batch_size: int = 0
    workers: int = 0
    tolerance: float = DEFAULT_TOLERANCE
    overwrite: bool = False

    @classmethod
    def from_spec(cls, spec: dict) -> AnnotateOptions:
        """Build from a job spec; raises JobError naming a missing field, or a field of the
        wrong type or out of range (so a client's mistake is told before anything runs)."""
        known = set(cls.__dataclass_fields__)
        kwargs = {k: v for k, v in spec.items() if k in known and v is not None}
        if not kwargs.get("model_dir") and spec.get("model"):  # the jobs registry's path field name
            kwargs["model_dir"] = spec["model"]
        for required in ("images", "model_dir"):
            if not kwargs.get(required):
                raise JobError(f"the annotate job spec needs '{required}'")
        for name, (types, low, high) in _FIELD_TYPES.items():
            if name not in kwargs:
                continue
            v = kwargs[name]
            if isinstance(v, bool) and bool not in types or not isinstance(v, types):
                expected = " or ".join(_TYPE_NAMES[t] for t in types)
                raise JobError(f"{name}: expected {expected}, got {type(v).__name__}")
            if low is not None and not low <= v <= high:
                raise JobError(f"{name}: {v} is outside [{low}, {high}]")
        mapping = kwargs.get("mapping")
        if mapping is not None and not (
            isinstance(mapping, dict)
            and all(isinstance(k, str) and isinstance(t, (str, type(None))) for k, t in mapping.items())
            or isinstance(mapping, list)
            and all(isinstance(p, str) for p in mapping)
        ):
            raise JobError("mapping: expected {model label: target label} (texts) or a list of MODEL=TARGET texts")
        opts = cls(**kwargs)
        if opts.format not in FORMATS:
            raise JobError(f"unknown format {opts.format!r}: choose one of {', '.join(FORMATS)}")
        if opts.engine not in ENGINES:
            raise JobError(f"unknown engine {opts.engine!r}: choose {' or '.join(ENGINES)}")
        return opts


_TYPE_NAMES = {str: "a text", int: "a whole number", float: "a number", bool: "true or false"}
# spec field -> (accepted types, lowest, highest value or None)
_FIELD_TYPES = {
    "images": ((str,), None, None),
    "model_dir": ((str,), None, None),
    "output": ((str,), None, None),
    "format": ((str,), None, None),
    "engine": ((str,), None, None),
    "device": ((str,), None, None),
    "threshold": ((int, float), 0.0, 1.0),
    "max_detections": ((int,), 1, 100_000),
    "keep_existing": ((bool,), None, None),
    "overwrite": ((bool,), None, None),
    "preview": ((int,), 0, 1_000_000),
    "batch_size": ((int,), 0, 1024),
    "workers": ((int,), 0, 256),
    "tolerance": ((int, float), 0.0, 1e6),
}


def load_model(model_dir: Path, device: str):
    """(model nn.Module in eval mode, labels, task) from a trained model folder.
    Raises JobError when the folder, its classes.csv or its model cannot be read."""
    from ..models.classes import ClassesError, read_classes_csv

    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise JobError(f"model folder {model_dir} not found: give the model/ folder of a training job's output")
    try:
        labels = read_classes_csv(model_dir / "classes.csv")
    except ClassesError as e:
        raise JobError(str(e)) from None
    from ..models.keras_retinanet import is_keras_model_dir

    if is_keras_model_dir(model_dir):  # model.json says framework tensorflow: annotate/tf_engine.py
        from .tf_engine import load_keras_model

        try:
            km = load_keras_model(model_dir)
        except Exception as e:  # noqa: BLE001 - the tf extra missing, or an unreadable folder
            raise JobError(f"cannot load the TensorFlow model in {model_dir}: {e}") from None
        return km, labels, km.task
    try:
        from ..models import load_trained_model
    except ImportError:
        raise JobError(
            "this version cannot load trained model folders yet (models.load_trained_model is missing)"
        ) from None
    try:
        tm = load_trained_model(model_dir, device=device)
    except Exception as e:  # noqa: BLE001 - any unreadable model folder
        raise JobError(f"cannot load the model in {model_dir}: {e}") from None
    return tm.model, labels, getattr(tm, "task", "detection")


@dataclass
class Decoded:
    source: ImageSource
    tensor: object  # uint8 CHW torch tensor at the model's input size
    width: int  # original size, pixels
    height: int


def decode_image(source: ImageSource, input_size) -> Decoded:
    """Read and decode ``source``, at the size ``input_size(h, w) -> (h', w')`` gives.
    Raises OSError / ValueError (PIL) for an unreadable image."""
    import torch
    from PIL import Image

    with source.open() as f:
        im = Image.open(f)
        w, h = im.size
        th, tw = input_size(h, w)
        if im.format == "JPEG" and (tw < w or th < h):
            im.draft("RGB", (tw, th))
        im = im.convert("RGB")
    if im.size != (tw, th):
        im = im.resize((tw, th), Image.BILINEAR)
    arr = np.array(im)  # writable copy (np.asarray of a PIL image is read-only)
    return Decoded(source, torch.from_numpy(arr).permute(2, 0, 1), w, h)


def detections_to_annotations(
    det: Detections,
    mapping: LabelMapping,
    lookup: np.ndarray,
    *,
    threshold: float,
    max_detections: int,
    scale: tuple[float, float],
    width: int,
    height: int,
    tolerance: float,
) -> tuple[list[Annotation], int]:
    """Turn one image's detections into annotations of the target labels.

    Keeps scores >= threshold, the best ``max_detections``, labels the mapping keeps;
    boxes (and polygons) are scaled by ``scale`` = (sx, sy) into original pixels and
    clipped to the image. Returns (annotations, number of empty masks skipped).
    """
    keep = np.nonzero(det.scores >= threshold)[0]
    keep = keep[np.argsort(-det.scores[keep], kind="stable")][:max_detections]
    out, empty = [], 0
    sx, sy = scale
    for i in keep:
        label_id = int(det.labels[i])
        t = lookup[label_id] if 0 <= label_id < len(lookup) else -1
        if t < 0:
            continue
        x1, y1, x2, y2 = (float(v) for v in det.boxes[i])
        box = (
            min(max(x1 * sx, 0.0), width),
            min(max(y1 * sy, 0.0), height),
            min(max(x2 * sx, 0.0), width),
            min(max(y2 * sy, 0.0), height),
        )
        polygons: list[list[float]] = []
        if det.masks is not None:
            polygons = mask_to_polygons(det.masks[i], tolerance=tolerance, scale=(sx, sy))
            if not polygons:
                empty += 1
                continue
        out.append(Annotation(label=mapping.target_labels[t], bbox=box, polygons=polygons, score=float(det.scores[i])))
    return out, empty


def _default_workers() -> int:
    return max(1, min(8, (os.cpu_count() or 2)))


def make_engine(opts: AnnotateOptions, model, model_dir: Path, device: str):
    """The engine the options ask for, around the loaded ``model``; a TensorFlow model
    folder's own engine (:mod:`.tf_engine`) whatever the options say but ``onnx``."""
    from .tf_engine import KerasModel

    if isinstance(model, KerasModel):
        if opts.engine == "onnx":
            raise JobError(
                f"{model_dir} is a TensorFlow model ({model.template}): the ONNX engine runs PyTorch models; "
                f"use engine torch (the default), which runs each model with its own framework"
            )
        from .tf_engine import KerasEngine

        return KerasEngine(model, opts.threshold, opts.max_detections)
    if opts.engine == "onnx":
        from .onnx_engine import OnnxEngine

        return OnnxEngine(model, model_dir, device=device)
    from .engine import TorchEngine

    return TorchEngine(model, device)


def run_annotate(ctx: JobContext) -> dict:
    """The annotate job function (for :func:`jupyter_cvat_train.jobs.runtime.run_job`).

    Reads ``ctx.spec`` (see :class:`AnnotateOptions`), checks everything that can be
    checked before the first image (input, model folder, mapping), then runs the
    pipeline. Returns the summary dict. Raises JobError for bad input, JobCancelled
    (with ``.outputs`` = the partial summary) after a SIGTERM.
    """
    opts = AnnotateOptions.from_spec(ctx.spec)
    try:
        explicit = parse_map_pairs(opts.mapping)
        source = open_input(opts.images, keep_existing=opts.keep_existing)
    except (MappingError, InputError) as e:
        raise JobError(str(e)) from None
    plan = plan_run_outputs(ctx, opts, source.path)
    # The ONNX Runtime engine runs on the CPU: "auto" means the CPU for it, even beside a GPU.
    device = "cpu" if opts.engine == "onnx" and opts.device in (None, "", "auto") else resolve_device(opts.device)
    model_dir = Path(opts.model_dir)
    from ..models.custom import read_run_info

    info = read_run_info(model_dir)
    if info is not None:  # a custom run's model: the template's own annotate command
        from ..models.classes import ClassesError, read_classes_csv
        from .custom_command import run_custom_annotate

        try:
            mapping = build_mapping(read_classes_csv(model_dir / "classes.csv"), source.labels, explicit)
        except (ClassesError, MappingError) as e:
            raise JobError(str(e)) from None
        t0 = time.perf_counter()
        pipe = Pipeline(ctx, opts, source.images, mapping, CommandEngine(), plan, "cpu", source_kind=source.kind)
        run_custom_annotate(pipe, model_dir, info)
        return pipe._finish(False, time.perf_counter() - t0)
    model, model_labels, task = load_model(model_dir, device)
    try:
        mapping = build_mapping(model_labels, source.labels, explicit)
    except MappingError as e:
        raise JobError(str(e)) from None
    ctx.log(
        f"annotating {len(source.images)} images from {source.path} ({source.kind}) with {model_dir} "
        f"({task}, {len(model_labels)} labels) on {device}, engine {opts.engine}"
    )
    if mapping.dropped:
        ctx.warn(
            f"model labels without a target label are dropped: {', '.join(mapping.dropped)}",
            dropped_labels=mapping.dropped,
        )
    from .engine import limit_postprocess

    limit_postprocess(model, opts.threshold, opts.max_detections)
    engine = make_engine(opts, model, model_dir, device)
    return Pipeline(ctx, opts, source.images, mapping, engine, plan, device, source_kind=source.kind).run()


class CommandEngine:
    """The engine's place in a :class:`Pipeline` whose annotations come from a custom
    template's annotate command (:mod:`.custom_command`), not from a model we load."""

    name = "template annotate command"
    parallel_calls = 1


def plan_run_outputs(ctx: JobContext, opts: AnnotateOptions, images: Path) -> OutputPlan:
    """The checked outputs of this run (:func:`.outputs.plan_outputs`): ``opts.output``,
    or ``<job>/output/annotations.zip``; never over ``images`` or the model folder, never
    into the job's own folder outside output/, an existing file only with ``overwrite``.
    Raises JobError naming the path and the fix."""
    output = Path(opts.output) if opts.output else ctx.output_dir / "annotations.zip"
    try:
        return plan_outputs(
            output,
            inputs=[("images", images), ("model folder", opts.model_dir)],
            overwrite=opts.overwrite,
            previews=opts.preview > 0,
            protected=[ctx.dir.path],
            allowed=[ctx.output_dir],
        )
    except OutputError as e:
        raise JobError(str(e)) from None


class Pipeline:
    """One run of the stages in the module docstring; :meth:`run` returns the summary.

    Threads: ``workers`` decode threads, ``inference_workers`` inference threads (each
    calls the engine on whole batches), one post-processing thread, and the calling
    thread, which feeds decoded images into batches and watches for a cancel.
    """

    def __init__(
        self,
        ctx: JobContext,
        opts: AnnotateOptions,
        images: list[ImageSource],
        mapping: LabelMapping,
        engine,
        plan: OutputPlan,
        device: str,
        source_kind: str = "folder",
    ):
        self.ctx, self.opts, self.images, self.mapping, self.engine = ctx, opts, images, mapping, engine
        self.plan, self.device, self.source_kind = plan, device, source_kind
        self.lookup = mapping.lookup()
        self.results: dict[int, AnnotatedImage] = {}
        self.failed: list[dict] = []
        self.counts = {n: 0 for n in mapping.target_labels}
        self.empty_masks = 0
        self.previews: list[str] = []
        cuda = device.startswith("cuda")
        self.batch_size = opts.batch_size or (8 if cuda else 1)
        self.workers = opts.workers or _default_workers()
        self.inference_workers = getattr(engine, "parallel_calls", 1)
        self._done = 0
        self._last_progress = 0.0

    def _fail(self, source: ImageSource, stage: str, err: BaseException) -> None:
        msg = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
        self.failed.append({"image": source.name, "stage": stage, "error": msg})
        self.ctx.warn(
            f"{source.name}: {stage} failed ({msg}); skipped, the run goes on",
            kind="image_failed",
            image=source.name,
            stage=stage,
        )

    def _count_done(self, n: int = 1) -> None:
        # Called by the post-processing thread only: progress events come from one thread.
        self._done += n
        t = time.monotonic()
        total = len(self.images)
        if self._done >= total or t - self._last_progress >= 0.25:
            self._last_progress = t
            self.ctx.progress(self._done, total, "images")

    def _post(self, q: queue.Queue) -> None:
        opts = self.opts
        while True:
            item = q.get()
            if item is None:
                return
            index, source, dec, det = item
            if dec is None:  # a failure already reported by another stage
                self._count_done()
                continue
            try:
                h_in, w_in = dec.tensor.shape[-2:]
                anns, empty = detections_to_annotations(
                    det,
                    self.mapping,
                    self.lookup,
                    threshold=opts.threshold,
                    max_detections=opts.max_detections,
                    scale=(dec.width / w_in, dec.height / h_in),
                    width=dec.width,
                    height=dec.height,
                    tolerance=opts.tolerance,
                )
                self.empty_masks += empty
                for a in anns:
                    self.counts[a.label] += 1
                existing = list(source.existing)
                self.results[index] = AnnotatedImage(source.name, dec.width, dec.height, existing + anns, source.subset)
                if len(self.previews) < opts.preview:
                    from PIL import Image

                    with source.open() as f, Image.open(f) as im:
                        p = render_preview(
                            im,
                            existing + anns,
                            self.mapping.target_labels,
                            self.plan.previews / preview_name(len(self.previews), source.name),
                        )
                    self.previews.append(str(p))
            except Exception as e:  # noqa: BLE001 - one image's post-processing must not stop the run
                self._fail(source, "post-processing", e)
            self._count_done()

    def _infer(self, batch: list[tuple[int, Decoded]], post_q: queue.Queue) -> None:
        try:
            dets = self.engine.predict([d.tensor for _, d in batch])
            for (i, d), det in zip(batch, dets):
                post_q.put((i, d.source, d, det))
        except Exception as e:  # noqa: BLE001 - isolate the failing image
            if len(batch) == 1:
                self._fail(batch[0][1].source, "inference", e)
                post_q.put((batch[0][0], batch[0][1].source, None, None))
                return
            for one in batch:
                self._infer([one], post_q)

    def _infer_loop(self, infer_q: queue.Queue, post_q: queue.Queue) -> None:
        while True:
            batch = infer_q.get()
            if batch is None:
                return
            self._infer(batch, post_q)

    def run(self) -> dict:
        ctx, images = self.ctx, self.images
        total = len(images)
        t0 = time.perf_counter()
        ctx.progress(0, total, "images")
        post_q: queue.Queue = queue.Queue()
        infer_q: queue.Queue = queue.Queue(maxsize=2 * self.inference_workers)
        poster = threading.Thread(target=self._post, args=(post_q,), name="annotate-post", daemon=True)
        poster.start()
        inferers = [
            threading.Thread(target=self._infer_loop, args=(infer_q, post_q), name=f"annotate-infer-{k}", daemon=True)
            for k in range(self.inference_workers)
        ]
        for th in inferers:
            th.start()
        cancelled = False
        window = max(2 * self.batch_size * self.inference_workers, 2 * self.workers)
        with ThreadPoolExecutor(self.workers, thread_name_prefix="annotate-decode") as pool:
            pending: deque = deque()
            next_i = 0
            batch: list[tuple[int, Decoded]] = []
            while next_i < total or pending:
                if ctx.cancelled.is_set():
                    cancelled = True
                    break
                while next_i < total and len(pending) < window:
                    pending.append((next_i, pool.submit(decode_image, images[next_i], self.engine.input_size)))
                    next_i += 1
                i, fut = pending.popleft()
                try:
                    batch.append((i, fut.result()))
                except Exception as e:  # noqa: BLE001 - unreadable image
                    self._fail(images[i], "reading", e)
                    post_q.put((i, images[i], None, None))
                if batch and (len(batch) >= self.batch_size or not pending):
                    self._put(infer_q, batch)
                    batch = []
            for _, fut in pending:
                fut.cancel()
        for _ in inferers:
            infer_q.put(None)
        for th in inferers:
            th.join()
        post_q.put(None)
        poster.join()
        seconds = time.perf_counter() - t0
        partial = cancelled and len(self.results) + len(self.failed) < total
        return self._finish(partial, seconds)

    def _put(self, q: queue.Queue, batch) -> None:
        # Block while the inference threads are busy, but wake up for a cancel.
        while True:
            try:
                q.put(batch, timeout=0.2)
                return
            except queue.Full:
                if self.ctx.cancelled.is_set():
                    return

    def _finish(self, cancelled: bool, seconds: float) -> dict:
        opts = self.opts
        done_images = [self.results[i] for i in sorted(self.results)]
        total = len(self.images)
        plan = self.plan
        output, summary_path, description = plan.output, plan.summary, "auto-annotation"
        if cancelled:
            output, summary_path = plan.partial, plan.partial_summary
            description = f"PARTIAL auto-annotation: {len(done_images)} of {total} images (cancelled)"
        try:
            write_annotations(
                opts.format,
                output,
                done_images,
                self.mapping.target_labels,
                description=description,
                overwrite=plan.overwrite,
            )
        except OutputError as e:
            raise JobError(str(e)) from None
        summary = {
            "output": str(output),
            "format": opts.format,
            "partial": cancelled,
            "images_total": total,
            "images_done": len(done_images),
            "images_failed": len(self.failed),
            "failed": self.failed,
            "counts": self.counts,
            "annotations": sum(self.counts.values()),
            "labels": self.mapping.target_labels,
            "mapping": self.mapping.to_target,
            "dropped_labels": self.mapping.dropped,
            "empty_masks_skipped": self.empty_masks,
            "threshold": opts.threshold,
            "max_detections": opts.max_detections,
            "keep_existing": opts.keep_existing,
            "engine": self.engine.name,
            "device": self.device,
            "batch_size": self.batch_size,
            "workers": self.workers,
            "inference_workers": self.inference_workers,
            "seconds": round(seconds, 3),
            "images_per_s": round(len(done_images) / seconds, 3) if seconds > 0 else None,
            "previews": self.previews,
        }
        try:
            write_json(summary_path, summary, overwrite=plan.overwrite)
        except OutputError as e:
            raise JobError(str(e)) from None
        summary["summary_path"] = str(summary_path)
        self.ctx.event("summary", **{k: v for k, v in summary.items() if k != "failed"})
        self.ctx.log(
            f"wrote {summary['annotations']} annotations on {len(done_images)} images to {output}"
            + (f" (PARTIAL: cancelled after {len(done_images)} of {total} images)" if cancelled else "")
        )
        if cancelled:
            err = JobCancelled(f"cancelled: partial result with {len(done_images)} of {total} images in {output}")
            err.outputs = summary
            raise err
        return summary
