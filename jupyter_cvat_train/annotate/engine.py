"""Inference engines: a torchvision detection model called on batches of images.

An engine takes decoded images (uint8 CHW tensors, already resized to the size the
model works at, see :func:`model_input_size`) and returns, per image, a
:class:`Detections` of numpy arrays in that image's pixels. Engines:

- :class:`TorchEngine`: the PyTorch model under ``torch.inference_mode``; on CUDA with
  channels_last weights and float16 autocast (AMP).
- :class:`jupyter_cvat_train.annotate.onnx_engine.OnnxEngine`: ONNX Runtime, CPU.

The model's own score threshold and detection limit are raised to the user's
threshold / max detections before inference. Since NMS only ever suppresses a box in
favour of a higher-scoring one, this gives the same detections above the threshold as
filtering afterwards, and spares the post-processing of thousands of low-score boxes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class Detections:
    """Predictions for one image, in the pixels of the image given to the engine.

    boxes: (N, 4) float32 xyxy. scores: (N,) float32 in [0, 1]. labels: (N,) int64
    model class ids (1..K). masks: (N, H, W) float32 probabilities, or None for box models.
    """

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    masks: np.ndarray | None = None


def model_input_size(model, height: int, width: int) -> tuple[int, int]:
    """(height, width) the model resizes an image of ``height`` x ``width`` to before
    its backbone, following torchvision's GeneralizedRCNNTransform (``fixed_size`` is
    (W, H); otherwise scale = min(min_size / short side, max_size / long side)).
    Returns the size unchanged for models without such a transform."""
    t = getattr(model, "transform", None)
    if t is None or not hasattr(t, "min_size"):
        return height, width
    fixed = getattr(t, "fixed_size", None)
    if fixed is not None:
        return int(fixed[1]), int(fixed[0])
    size = float(t.min_size[-1])
    scale = min(size / min(height, width), float(t.max_size) / max(height, width))
    return int(math.floor(height * scale)), int(math.floor(width * scale))


def limit_postprocess(model, threshold: float, max_detections: int) -> None:
    """Raise the model's score threshold to ``threshold`` and set its detection limit to
    ``max_detections`` (torchvision R-CNN ``roi_heads``, SSD / RetinaNet / FCOS heads).
    Scores equal to the threshold are kept (the model compares with ``>``)."""
    thr = math.nextafter(float(threshold), -math.inf)
    for owner in (getattr(model, "roi_heads", None), model):
        if owner is None:
            continue
        if hasattr(owner, "score_thresh"):
            owner.score_thresh = max(float(owner.score_thresh), thr)
        if hasattr(owner, "detections_per_img"):
            owner.detections_per_img = int(max_detections)


def cpu_parallelism(threads: int | None = None, max_calls: int = 8) -> tuple[int, int]:
    """(concurrent model calls, intra-op threads per call) for ``threads`` CPU threads
    (default: the CPUs this process may run on). Calls = min(threads, max_calls)."""
    import os

    if not threads:
        try:
            threads = len(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            threads = os.cpu_count() or 1
    calls = max(1, min(threads, max_calls))
    return calls, max(1, threads // calls)


class TorchEngine:
    """A torchvision detection model (nn.Module, eval mode) on ``device``.

    predict(images) takes a list of uint8 CHW tensors (any sizes) and returns one
    :class:`Detections` per image; it may be called from several threads at once
    (``parallel_calls`` of them). Raises whatever the model raises (the pipeline then
    retries the batch one image at a time, to isolate a failing image).

    On the CPU the cores are used by ``parallel_calls`` concurrent calls of one
    intra-op thread each (see :func:`cpu_parallelism`), not by one call with many
    threads: detection models have long serial stretches (RoI align, NMS, Python
    glue), and OpenMP teams stall badly when a core is taken by another process.
    channels_last weights are used on both CPU (routes 1x1 convolutions to oneDNN) and CUDA.
    """

    name = "torch"

    def __init__(
        self,
        model,
        device: str = "cpu",
        *,
        amp: bool | None = None,
        channels_last: bool = True,
        threads: int | None = None,
    ):
        import torch

        self.torch = torch
        self.device = torch.device(device)
        cuda = self.device.type == "cuda"
        self.amp = cuda if amp is None else amp
        self.model = model.eval().to(self.device)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        if cuda:
            self.parallel_calls = 1
        else:
            self.parallel_calls, intra = cpu_parallelism(threads)
            torch.set_num_threads(intra)

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        return model_input_size(self.model, height, width)

    def predict(self, images: list) -> list[Detections]:
        torch = self.torch
        with torch.inference_mode():
            batch = [im.to(self.device, non_blocking=True).float().div_(255) for im in images]
            if self.amp:
                with torch.autocast(self.device.type, dtype=torch.float16):
                    outputs = self.model(batch)
            else:
                outputs = self.model(batch)
        return [to_detections(o) for o in outputs]


def to_detections(o: dict) -> Detections:
    """torchvision output dict -> :class:`Detections` (numpy, float32, on the CPU)."""
    masks = o.get("masks")
    if masks is not None:
        masks = masks.float().squeeze(1).cpu().numpy()
    return Detections(
        o["boxes"].float().cpu().numpy(),
        o["scores"].float().cpu().numpy(),
        o["labels"].cpu().numpy().astype(np.int64),
        masks,
    )
