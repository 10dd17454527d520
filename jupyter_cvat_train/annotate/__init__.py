"""Automatic annotation: run a trained model over images and write a CVAT-importable zip.

- :func:`run_annotate` is the job function (``python -m jupyter_cvat_train.annotate JOB_DIR``
  and ``cvat-train annotate`` both run it through ``jobs.runtime.run_job``);
- :mod:`.inputs` finds the images (folder, zip, CVAT export), :mod:`.mapping` maps model
  labels to target labels, :mod:`.engine` / :mod:`.onnx_engine` run the model,
  :mod:`..datasets.geometry` turns masks into polygons, :mod:`.writers` writes COCO / CVAT / YOLO
  zips, :mod:`.preview` draws preview PNGs, :mod:`.pipeline` runs it all.

Importing this package does not import torch.
"""

from .mapping import LabelMapping, MappingError, build_mapping, parse_map_pairs
from .pipeline import AnnotateOptions, run_annotate
from .writers import FORMATS, AnnotatedImage, write_annotations

__all__ = [
    "AnnotateOptions",
    "run_annotate",
    "LabelMapping",
    "MappingError",
    "build_mapping",
    "parse_map_pairs",
    "FORMATS",
    "AnnotatedImage",
    "write_annotations",
]
