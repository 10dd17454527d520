"""Polygons: from instance masks (readers of mask annotations, segmentation models'
predictions) and their area.

Polygons are flat ``[x1, y1, x2, y2, ...]`` lists in pixels (COCO's ``segmentation``
layout, see :mod:`.model`).

:func:`mask_to_polygons` method: OpenCV border following (Suzuki & Abe 1985,
``cv2.findContours`` with ``RETR_EXTERNAL``: outer boundaries only, holes are not written) on the mask
thresholded at ``mask_threshold``, then Douglas-Peucker simplification
(``cv2.approxPolyDP``) with ``tolerance`` = the largest distance, in pixels of the
mask, between the traced boundary and the written polygon. The default tolerance,
1.0 px, keeps outlines within a pixel of the mask while cutting the point count by
about 5-10x on cell-like shapes. Contours with fewer than 3 points or an area under
``min_area`` px are dropped; an empty mask gives ``[]`` (never an error).
"""

from __future__ import annotations

import numpy as np

DEFAULT_TOLERANCE = 1.0


def mask_to_polygons(
    mask: np.ndarray,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    mask_threshold: float = 0.5,
    min_area: float = 1.0,
    scale: tuple[float, float] = (1.0, 1.0),
    largest_first: bool = True,
) -> list[list[float]]:
    """Polygons of the foreground of ``mask``.

    mask: (H, W) array, probabilities in [0, 1] or a boolean / 0-1 mask.
    tolerance: Douglas-Peucker tolerance in mask pixels (0: the traced contour as it is).
    min_area: contours with a smaller area (square mask pixels) are dropped.
    scale: (sx, sy) multiplied into the x and y coordinates (mask pixels -> image pixels).
    largest_first: sort by area, else keep OpenCV's order.
    Returns a list of flat ``[x1, y1, x2, y2, ...]`` lists (COCO layout).
    """
    import cv2

    m = np.asarray(mask)
    if m.ndim == 3:
        m = m[0]
    binary = (m >= mask_threshold) if m.dtype != np.bool_ else m
    if not binary.any():
        return []
    contours, _ = cv2.findContours(binary.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polys = []
    for c in contours:
        if tolerance > 0:
            c = cv2.approxPolyDP(c, tolerance, True)
        if len(c) < 3:
            continue
        area = cv2.contourArea(c)
        if area < min_area:
            continue
        pts = c.reshape(-1, 2).astype(np.float64) * np.asarray(scale, dtype=np.float64)
        polys.append((area, pts.reshape(-1).round(2).tolist()))
    if largest_first:
        polys.sort(key=lambda t: -t[0])
    return [p for _, p in polys]


def polygon_area(poly) -> float:
    """Area of a flat xy polygon (a sequence of numbers) by the shoelace formula, in
    square pixels: NaN when a coordinate is NaN, infinite or NaN when one is infinite.
    Raises TypeError when a coordinate is not a number."""
    xs, ys = poly[0::2], poly[1::2]
    return abs(sum(xs[i - 1] * ys[i] - xs[i] * ys[i - 1] for i in range(len(xs)))) / 2
