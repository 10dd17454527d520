"""The inference engine of TensorFlow model folders (``model.json``: ``"framework": "tensorflow"``).

Same interface as :class:`.engine.TorchEngine`: ``input_size(h, w)`` (the square input
side: the decode stage resizes to it, as training did), ``predict(images)`` on a batch
of uint8 CHW images -> one :class:`.engine.Detections` per image, in that image's
pixels, class ids 1..K. The model's graph (a ``tf.function`` of the Keras model) gives
the raw head outputs of the whole batch; anchors, box decoding and NMS run after it,
eagerly (a SavedModel with NMS inside worked only with a fixed batch size). The
decoder keeps scores at or above the user's threshold and ``max_detections`` boxes, so
the pipeline's own filter is a no-op, as with the torch engine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .engine import Detections


@dataclass
class KerasModel:
    """A loaded TensorFlow model folder: the Keras model, its labels, template,
    parameters and square input side."""

    model: object
    labels: list[str]
    template: str
    params: dict
    side: int
    task: str = "detection"


def load_keras_model(model_dir: Path | str) -> KerasModel:
    """Load a TensorFlow model folder (:func:`jupyter_cvat_train.models.keras_retinanet.load_model_dir`).
    Raises RuntimeError (the tf extra missing, with the install command) or ValueError."""
    from ..models import keras_retinanet as kr

    model, labels, params, meta = kr.load_model_dir(model_dir)
    return KerasModel(
        model=model,
        labels=labels,
        template=meta["template"],
        params=params,
        side=kr.input_size(meta["template"], int(params["image_size"])),
        task=meta.get("task") or "detection",
    )


class KerasEngine:
    """Batched inference of a :class:`KerasModel` (see the module docstring) on the CPU or
    TensorFlow's first GPU. ``threshold``/``max_detections``: the decoder's limits."""

    name = "tensorflow"
    parallel_calls = 1  # one call uses every core (TensorFlow's own thread pools)

    def __init__(self, km: KerasModel, threshold: float, max_detections: int):
        from ..models import keras_retinanet as kr

        tf, _, _ = kr.import_keras()
        self.kr, self.km = kr, km
        kr.set_decoder(km.model, math.nextafter(float(threshold), -math.inf), int(max_detections))
        self._call = tf.function(lambda x: km.model(x, training=False), reduce_retracing=True)

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        return self.km.side, self.km.side

    def predict(self, images: list) -> list[Detections]:
        batch = np.stack([np.asarray(im).transpose(1, 2, 0) for im in images])
        x = self.kr.preprocess(batch)
        raw = self._call(x)
        return [Detections(b, s, c) for b, s, c in self.kr.decode(self.km.model, raw, x)]
