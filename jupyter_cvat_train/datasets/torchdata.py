"""A torch Dataset over the normalized :class:`~.model.Dataset`, with box- and mask-aware
augmentation (torchvision transforms v2), and the detection collate function.

Each sample is ``(image, target)``:

- image: float32 tensor C x H x W in [0, 1] (RGB);
- target: {"boxes": float32 N x 4 xyxy pixels, "labels": int64 N (ids 1..K, 0 is
  background), "image_id": int (index in the item list), and for instance segmentation
  "masks": uint8 N x H x W (polygons rasterized with PIL)}.

This is the input torchvision's detection models take (torchvision detection reference
scripts: ``collate_fn`` = tuple(zip(*batch))).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from .model import Annotation, Item


def clean_annotations(items: Sequence[Item], labels: Sequence[str]) -> tuple[list[Item], dict]:
    """Copies of ``items`` keeping only usable annotations, and what was dropped.

    Dropped: boxes with a non-finite coordinate or zero/negative width or height after
    clipping to the image (when its size is known) ("degenerate"), and annotations whose
    label is not in ``labels`` ("unknown_label"). Returns (items, {"degenerate": n,
    "unknown_label": n}).
    """
    known = set(labels)
    dropped = {"degenerate": 0, "unknown_label": 0}
    out = []
    for it in items:
        keep = []
        for a in it.annotations:
            if a.label not in known:
                dropped["unknown_label"] += 1
                continue
            x1, y1, x2, y2 = (float(v) for v in a.bbox)
            if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
                dropped["degenerate"] += 1
                continue
            if it.width and it.height:
                x1, x2 = min(max(x1, 0.0), it.width), min(max(x2, 0.0), it.width)
                y1, y2 = min(max(y1, 0.0), it.height), min(max(y2, 0.0), it.height)
            if x2 - x1 < 1e-3 or y2 - y1 < 1e-3:
                dropped["degenerate"] += 1
                continue
            keep.append(Annotation(label=a.label, bbox=(x1, y1, x2, y2), polygons=a.polygons, attributes=a.attributes))
        out.append(
            Item(
                id=it.id, image_path=it.image_path, width=it.width, height=it.height, subset=it.subset, annotations=keep
            )
        )
    return out, dropped


def rasterize_polygons(polygons: list[list[float]], height: int, width: int) -> torch.Tensor:
    """A uint8 H x W mask (1 inside) of the union of ``polygons`` (flat xy lists, pixels)."""
    import numpy as np
    from PIL import Image, ImageDraw

    img = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(img)
    for poly in polygons:
        if len(poly) >= 6:
            draw.polygon([(poly[i], poly[i + 1]) for i in range(0, len(poly) - 1, 2)], fill=1, outline=1)
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy())


def build_transforms(params: dict, train: bool) -> v2.Compose:
    """transforms v2 pipeline for (image, target) pairs; boxes and masks move with the image.

    Training (from the hyperparameters): ColorJitter(color_jitter strength),
    RandomZoomOut(p=zoom_out, side range 1..2), RandomHorizontalFlip(p=hflip),
    RandomVerticalFlip(p=vflip); always ToDtype(float32, scale) and SanitizeBoundingBoxes
    (drops boxes that became empty). Evaluation: only the conversion.
    """
    steps: list = []
    if train:
        cj = float(params.get("color_jitter") or 0.0)
        if cj > 0:
            steps.append(v2.ColorJitter(brightness=0.4 * cj, contrast=0.4 * cj, saturation=0.4 * cj, hue=0.05 * cj))
        if float(params.get("zoom_out") or 0.0) > 0:
            steps.append(
                v2.RandomZoomOut(
                    fill={tv_tensors.Image: 124, "others": 0}, side_range=(1.0, 2.0), p=float(params["zoom_out"])
                )
            )
        if float(params.get("hflip") or 0.0) > 0:
            steps.append(v2.RandomHorizontalFlip(p=float(params["hflip"])))
        if float(params.get("vflip") or 0.0) > 0:
            steps.append(v2.RandomVerticalFlip(p=float(params["vflip"])))
    steps.append(v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True))
    if train:
        steps.append(v2.SanitizeBoundingBoxes(min_size=1.0))
    return v2.Compose(steps)


class UnreadableSample:
    """What :class:`DetectionDataset` gives instead of a sample whose image cannot be
    decoded, and :func:`collate` instead of a batch holding one. It crosses from a
    DataLoader worker as a value (an exception would arrive wrapped in the worker's
    traceback); the training process raises a JobError with ``message`` (one line,
    naming the file)."""

    def __init__(self, message: str):
        self.message = message


class DetectionDataset(torch.utils.data.Dataset):
    """Items as (image, target) samples for torchvision detection models (module docstring).

    items: cleaned items (see :func:`clean_annotations`) whose image_path exists.
    labels: label names; labels[k] gets class id k + 1.
    transforms: a callable (image, target) -> (image, target), e.g. :func:`build_transforms`.
    with_masks: rasterize polygons to "masks" (Mask R-CNN).
    """

    def __init__(self, items: Sequence[Item], labels: Sequence[str], transforms=None, with_masks: bool = False):
        self.items = list(items)
        self.label_ids = {name: k + 1 for k, name in enumerate(labels)}
        self.transforms = transforms
        self.with_masks = with_masks

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        it = self.items[index]
        try:
            image = read_rgb(it.image_path)
        except Exception as e:  # noqa: BLE001 - any decoder failure: name the file and the fix
            return UnreadableSample(
                f"image {it.image_path} (item {it.subset}/{it.id}) cannot be decoded "
                f"({type(e).__name__}: {e}); re-export the task from CVAT, or delete the image "
                "from it, then train again"
            )
        h, w = int(image.shape[-2]), int(image.shape[-1])
        anns = it.annotations
        boxes = torch.tensor([a.bbox for a in anns], dtype=torch.float32).reshape(-1, 4)
        target = {
            "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(h, w)),
            "labels": torch.tensor([self.label_ids[a.label] for a in anns], dtype=torch.int64),
            "image_id": index,
        }
        if self.with_masks:
            masks = [rasterize_polygons(a.polygons, h, w) if a.polygons else _box_mask(a.bbox, h, w) for a in anns]
            target["masks"] = tv_tensors.Mask(
                torch.stack(masks) if masks else torch.zeros((0, h, w), dtype=torch.uint8)
            )
        image = tv_tensors.Image(image)
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        target["boxes"] = target["boxes"].as_subclass(torch.Tensor)
        if "masks" in target:
            target["masks"] = target["masks"].as_subclass(torch.Tensor)
        return image.as_subclass(torch.Tensor), target


def read_rgb(path) -> torch.Tensor:
    """The image at ``path`` as a uint8 tensor 3 x H x W (RGB), decoded with Pillow.
    Raises ValueError, before decoding, for an image of more than
    :data:`.imagefiles.MAX_IMAGE_PIXELS` pixels (a decompression bomb)."""
    import numpy as np
    from PIL import Image

    from .imagefiles import MAX_IMAGE_PIXELS

    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS  # Pillow itself refuses at twice this
    with Image.open(path) as im:
        if im.width * im.height > MAX_IMAGE_PIXELS:
            raise ValueError(
                f"its header declares {im.width}x{im.height} pixels, over the limit of "
                f"{MAX_IMAGE_PIXELS} (CVAT_TRAIN_MAX_IMAGE_PIXELS)"
            )
        arr = np.asarray(im.convert("RGB"))
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)


def _box_mask(bbox, h: int, w: int) -> torch.Tensor:
    m = torch.zeros((h, w), dtype=torch.uint8)
    x1, y1, x2, y2 = (int(round(v)) for v in bbox)
    m[max(0, y1) : max(0, y2), max(0, x1) : max(0, x2)] = 1
    return m


def collate(batch):
    """Detection collate: a list of (image, target) -> (tuple of images, tuple of targets);
    the first :class:`UnreadableSample` in the list instead, if there is one."""
    bad = next((s for s in batch if isinstance(s, UnreadableSample)), None)
    return bad if bad is not None else tuple(zip(*batch))
