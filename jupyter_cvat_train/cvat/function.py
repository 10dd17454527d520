"""A trained model folder as a CVAT auto-annotation (AA) detection function.

The CVAT SDK (``cvat_sdk.auto_annotation``) runs a *detection function*: an object with
a ``spec`` (the labels it can output) and ``detect(context, image)`` (one PIL image ->
a list of shapes of those labels). This module is such a function for any model folder
our training writes (``model.pt`` + ``classes.csv``), through the same model loading and
inference as the annotate job (:func:`..annotate.pipeline.load_model`,
:func:`..annotate.pipeline.make_engine`, :func:`..annotate.pipeline.detections_to_annotations`).

The module is a function *factory* in the SDK's sense: it has ``create(**kwargs)``, which
``cvat-cli`` calls with the ``-p NAME=TYPE:VALUE`` parameters::

    cvat-cli task auto-annotate TASK_ID \\
        --function-module jupyter_cvat_train.cvat.function -p model_dir=str:PATH
    cvat-cli function create-native "My model" \\
        --function-module jupyter_cvat_train.cvat.function -p model_dir=str:PATH

Parameters of :func:`create`: ``model_dir`` (required), ``device`` (auto | cpu | cuda[:N]),
``max_detections`` (per image, default 100), ``threshold`` (used when CVAT passes no
confidence threshold, default 0.5), ``tolerance`` (polygon simplification in pixels).

Shapes: rectangles for detectors; for instance segmentation models (Mask R-CNN) one
polygon per detected object (the largest piece of its mask), the shape type CVAT's
label mapping and its UI support best (masks would need CVAT's RLE encoding and the
``conv_mask_to_poly`` switch). The model is loaded once, in :func:`create`.

CVAT's confidence threshold (``context.conf_threshold``) is honoured exactly: only
objects scoring at or above it are returned. The model's own post-processing floor
still applies below that (torchvision: 0.01 for SSD/SSDlite, 0.05 for the R-CNNs).

This module imports ``cvat_sdk`` (the ``cvat`` extra: ``pip install
jupyter_cvat_train[cvat]``) and, when :func:`create` runs, torch.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from ..annotate.engine import cpu_parallelism, limit_postprocess
from ..annotate.mapping import build_mapping
from ..annotate.pipeline import AnnotateOptions, detections_to_annotations, load_model, make_engine
from ..datasets.geometry import DEFAULT_TOLERANCE
from ..jobs.runtime import JobError

SEGMENTATION_TASKS = ("instance-segmentation", "segmentation")
DEFAULT_THRESHOLD = 0.5


def _sdk():
    try:
        import cvat_sdk.auto_annotation as cvataa
    except ImportError:
        raise JobError(
            "the CVAT SDK is not installed: pip install 'jupyter_cvat_train[cvat]' (cvat-sdk and cvat-cli)"
        ) from None
    return cvataa


class ModelFunction:
    """A CVAT detection function over a trained model folder.

    model_dir: a model folder (``model.pt``, ``classes.csv``). device: auto | cpu |
    cuda[:N]. threshold: the confidence threshold when CVAT passes none, in [0, 1].
    max_detections: per image. tolerance: polygon simplification in pixels.

    Attributes: ``spec`` (a ``cvat_sdk.auto_annotation.DetectionFunctionSpec``: label ids
    1..N in classes.csv order, type ``rectangle`` or ``polygon``), ``labels`` (the model's
    label names), ``task`` (the model's task), ``shape_type``.

    Raises JobError when the folder, its classes.csv or its weights cannot be read, or
    when a parameter is out of range (the message names it).
    """

    def __init__(
        self,
        model_dir: str | Path,
        *,
        device: str = "auto",
        threshold: float = DEFAULT_THRESHOLD,
        max_detections: int = 100,
        tolerance: float = DEFAULT_TOLERANCE,
    ):
        from ..models.device import resolve_device

        cvataa = _sdk()
        if not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
            raise JobError(f"threshold: {threshold!r} is not a number in [0, 1]")
        if not isinstance(max_detections, int) or max_detections < 1:
            raise JobError(f"max_detections: {max_detections!r} is not a whole number >= 1")
        self.model_dir = Path(model_dir).expanduser()
        self.device = resolve_device(device)
        self.default_threshold = float(threshold)
        self.max_detections = max_detections
        self.tolerance = float(tolerance)
        model, labels, task = load_model(self.model_dir, self.device)
        self.labels, self.task = list(labels), task
        # Keep the model's own floor: CVAT's threshold changes per request, and lowering
        # the floor would send thousands of low-score boxes through NMS.
        limit_postprocess(model, 0.0, max_detections)
        # The annotate job's engine choice (the torch engine; a framework's own engine for
        # model folders of other frameworks, as annotate picks it).
        self.engine = make_engine(
            AnnotateOptions(images="", model_dir=str(self.model_dir)), model, self.model_dir, self.device
        )
        if getattr(self.engine, "name", "") == "torch" and not self.device.startswith("cuda"):
            # The annotate job runs several one-thread calls at once; detect() gets one
            # image at a time, so one call uses all the CPUs this process may use.
            import torch

            torch.set_num_threads(cpu_parallelism(max_calls=1)[1])
            self.engine.parallel_calls = 1
        self._lock = threading.Lock()  # one model call at a time (a notebook may use threads)
        self.mapping = build_mapping(self.labels)
        self.lookup = self.mapping.lookup()
        self.shape_type = "polygon" if task in SEGMENTATION_TASKS else "rectangle"
        self.spec = cvataa.DetectionFunctionSpec(
            labels=[cvataa.label_spec(name, i, type=self.shape_type) for i, name in enumerate(self.labels, start=1)]
        )

    def predict(self, image, threshold: float | None = None) -> list:
        """Run the model on one PIL image; returns :class:`..datasets.model.Annotation`s
        (label names of the model, boxes xyxy and polygons in the image's pixels, clipped
        to it, scores >= ``threshold`` or the default threshold), best score first."""
        import torch

        threshold = self.default_threshold if threshold is None else float(threshold)
        im = image.convert("RGB")
        width, height = im.size
        th, tw = self.engine.input_size(height, width)
        if (tw, th) != (width, height):
            from PIL import Image

            im = im.resize((tw, th), Image.BILINEAR)
        tensor = torch.from_numpy(np.array(im)).permute(2, 0, 1)
        with self._lock:
            (det,) = self.engine.predict([tensor])
        annotations, _empty = detections_to_annotations(
            det,
            self.mapping,
            self.lookup,
            threshold=threshold,
            max_detections=self.max_detections,
            scale=(width / tw, height / th),
            width=width,
            height=height,
            tolerance=self.tolerance,
        )
        return annotations

    def detect(self, context, image) -> list:
        """The SDK's detection call: ``context.conf_threshold`` (None: the default
        threshold) and a PIL image -> ``LabeledShapeRequest``s (frame 0, label ids of
        :attr:`spec`)."""
        cvataa = _sdk()
        threshold = getattr(context, "conf_threshold", None)
        width, height = image.size
        ids = {name: i for i, name in enumerate(self.labels, start=1)}
        shapes = []
        for a in self.predict(image, threshold):
            label_id = ids[a.label]
            if self.shape_type == "polygon":
                if not a.polygons:
                    continue
                pts = np.asarray(a.polygons[0], dtype=np.float64).reshape(-1, 2)
                pts[:, 0] = pts[:, 0].clip(0, width)
                pts[:, 1] = pts[:, 1].clip(0, height)
                if len(pts) < 3:
                    continue
                shapes.append(cvataa.polygon(label_id, [float(v) for v in pts.reshape(-1)]))
            else:
                x1, y1, x2, y2 = a.bbox
                if x2 <= x1 or y2 <= y1:
                    continue
                shapes.append(cvataa.rectangle(label_id, [x1, y1, x2, y2]))
        return shapes


def create(
    model_dir: str = "",
    device: str = "auto",
    threshold: float = DEFAULT_THRESHOLD,
    max_detections: int = 100,
    tolerance: float = DEFAULT_TOLERANCE,
) -> ModelFunction:
    """The factory ``cvat-cli`` calls with the ``-p`` parameters (see the module
    docstring). Raises JobError without ``model_dir`` or for an unreadable model folder."""
    if not model_dir:
        raise JobError(
            "the model folder is not given: add -p model_dir=str:PATH (a training job's output/model folder)"
        )
    return ModelFunction(
        model_dir, device=device, threshold=threshold, max_detections=max_detections, tolerance=tolerance
    )
