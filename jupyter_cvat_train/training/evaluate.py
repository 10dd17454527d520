"""COCO evaluation of a detection / instance-segmentation model on the val split.

Metrics follow the COCO detection evaluation (cocodataset.org/#detection-eval), computed
with faster-coco-eval (a drop-in, faster implementation of pycocotools' COCOeval) or,
when it is not installed, pycocotools:

- ``map``: mAP@[.5:.95] (AP averaged over IoU 0.50:0.05:0.95, all areas, 100 detections);
- ``map_50``, ``map_75``: AP at IoU 0.5 / 0.75;
- ``per_label``: {label: AP@[.5:.95]} (None for a label absent from the val split).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterable, Sequence

import numpy as np

from ..datasets.model import Item

try:  # faster-coco-eval: same results as pycocotools, several times faster
    from faster_coco_eval import COCO as _COCO
    from faster_coco_eval import COCOeval_faster as _COCOeval
    from faster_coco_eval.core import mask as _mask_utils

    EVALUATOR = "faster-coco-eval"
except ImportError:  # pragma: no cover - depends on the installation
    from pycocotools import mask as _mask_utils
    from pycocotools.coco import COCO as _COCO
    from pycocotools.cocoeval import COCOeval as _COCOeval

    EVALUATOR = "pycocotools"


def coco_ground_truth(items: Sequence[Item], labels: Sequence[str], sizes: Sequence[tuple[int, int]]) -> dict:
    """COCO ground-truth dict for ``items`` (image id = index, category id = label index + 1).
    sizes: (height, width) per item, pixels. Boxes become xywh; an annotation without a
    polygon gets its box as polygon (for segm evaluation)."""
    ids = {name: k + 1 for k, name in enumerate(labels)}
    images, anns = [], []
    for i, (it, (h, w)) in enumerate(zip(items, sizes)):
        images.append({"id": i, "width": int(w), "height": int(h), "file_name": str(it.id)})
        for a in it.annotations:
            x1, y1, x2, y2 = a.bbox
            polys = [p for p in a.polygons if len(p) >= 6] or [[x1, y1, x2, y1, x2, y2, x1, y2]]
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i,
                    "category_id": ids[a.label],
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": float((x2 - x1) * (y2 - y1)),
                    "iscrowd": 0,
                    "segmentation": polys,
                }
            )
    return {
        "images": images,
        "annotations": anns,
        "categories": [{"id": k + 1, "name": name} for k, name in enumerate(labels)],
    }


def _summarize(gt, dets: list, iou_type: str, labels: Sequence[str]) -> dict:
    if not dets:
        return {
            "map": 0.0,
            "map_50": 0.0,
            "map_75": 0.0,
            "per_label": {
                name: (0.0 if any(a["category_id"] == k + 1 for a in gt.dataset["annotations"]) else None)
                for k, name in enumerate(labels)
            },
        }
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(dets)
        ev = _COCOeval(gt, dt, iouType=iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    stats = [float(s) for s in ev.stats]
    precision = np.asarray(ev.eval["precision"])  # T x R x K x A x M
    cat_ids = list(ev.params.catIds)
    per_label = {}
    for k, name in enumerate(labels):
        if k + 1 not in cat_ids:
            per_label[name] = None
            continue
        p = precision[:, :, cat_ids.index(k + 1), 0, -1]
        p = p[p > -1]
        per_label[name] = float(p.mean()) if p.size else None
    return {
        "map": max(stats[0], 0.0),
        "map_50": max(stats[1], 0.0),
        "map_75": max(stats[2], 0.0),
        "per_label": per_label,
    }


def evaluate(
    model,
    loader: Iterable,
    items: Sequence[Item],
    labels: Sequence[str],
    device,
    with_masks: bool = False,
    cancelled=None,
) -> dict:
    """Run ``model`` (eval mode) over ``loader`` (batches of (images, targets) in the order
    of ``items``, targets with "image_id" = index in items) and return the COCO metrics:
    {"map", "map_50", "map_75", "per_label", "evaluator", and for masks "segm": {...} and
    "bbox": {...}}; the top-level numbers are box metrics for detection and mask metrics
    for instance segmentation. ``cancelled``: an Event; when set, evaluation stops early
    and returns None."""
    import torch

    with torch.inference_mode():
        return _evaluate(model, loader, items, labels, device, with_masks, cancelled)


def _evaluate(model, loader, items, labels, device, with_masks, cancelled) -> dict | None:
    was_training = model.training
    model.eval()
    sizes: list[tuple[int, int]] = [(0, 0)] * len(items)
    box_dets, segm_dets = [], []
    for images, targets in loader:
        if cancelled is not None and cancelled.is_set():
            model.train(was_training)
            return None
        outputs = model([im.to(device, non_blocking=True) for im in images])
        for im, tgt, out in zip(images, targets, outputs):
            i = int(tgt["image_id"])
            sizes[i] = (int(im.shape[-2]), int(im.shape[-1]))
            boxes = out["boxes"].float().cpu().numpy()
            scores = out["scores"].float().cpu().numpy()
            cats = out["labels"].cpu().numpy()
            for b, s, c in zip(boxes, scores, cats):
                box_dets.append(
                    {
                        "image_id": i,
                        "category_id": int(c),
                        "score": float(s),
                        "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])],
                    }
                )
            if with_masks and "masks" in out:
                masks = (out["masks"][:, 0] > 0.5).cpu().numpy().astype(np.uint8)
                if len(masks):
                    rles = _mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0)))
                    for rle, s, c in zip(rles, scores, cats):
                        rle["counts"] = (
                            rle["counts"].decode("ascii") if isinstance(rle["counts"], bytes) else rle["counts"]
                        )
                        segm_dets.append({"image_id": i, "category_id": int(c), "score": float(s), "segmentation": rle})
    model.train(was_training)
    return coco_metrics(items, labels, sizes, box_dets, segm_dets if with_masks else None)


def coco_metrics(
    items: Sequence[Item],
    labels: Sequence[str],
    sizes: Sequence[tuple[int, int]],
    box_dets: list[dict],
    segm_dets: list[dict] | None = None,
) -> dict:
    """COCO metrics of detections given as COCO result dicts (``image_id`` = index in
    ``items``, ``category_id`` = label index + 1, ``score``, ``bbox`` xywh in the items'
    pixels; ``segmentation`` RLE for ``segm_dets``) against the items' annotations;
    ``sizes``: (height, width) per item. Framework-free: the torch loop above and the
    TensorFlow trainer both end here, so their numbers compare. Returns what
    :func:`evaluate` returns (masks when ``segm_dets`` is not None)."""
    with_masks = segm_dets is not None
    with contextlib.redirect_stdout(io.StringIO()):
        gt = _COCO()
        gt.dataset = coco_ground_truth(items, labels, sizes)
        gt.createIndex()
    bbox = _summarize(gt, box_dets, "bbox", labels)
    if not with_masks:
        return {**bbox, "evaluator": EVALUATOR}
    segm = _summarize(gt, segm_dets, "segm", labels)
    return {**segm, "bbox": bbox, "segm": segm, "evaluator": EVALUATOR}
