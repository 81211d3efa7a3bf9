"""Measurements every importer takes from a nodule mask: bbox, centre, area, equivalent diameter, crop box.

One place for these so the `full`/`nodule` views of every source carry the same columns with the same
meaning (physical size from the mask + spacing is the strongest malignancy signal, so it must never
depend on which importer made the dataset).
"""

from __future__ import annotations

import math

import numpy as np


def equivalent_diameter_mm(masks: np.ndarray, spacing: tuple[float, float]) -> np.ndarray:
    """Diameter (mm) of the disc with the same area as each 2D mask: one value for an (H, W) mask, N for
    (N, H, W); the batch form of `mask_geometry`'s `mask_diameter_mm` (descriptors, generated-sample checks)."""
    area = (np.asarray(masks) > 0).sum(axis=(-2, -1)) * float(spacing[0]) * float(spacing[1])
    return 2.0 * np.sqrt(area / np.pi)


def mask_geometry(mask: np.ndarray, spacing: tuple[float, float]) -> dict[str, float | int]:
    """Bbox (`bbox_r0, bbox_c0, bbox_r1, bbox_c1`, end exclusive), centroid (`centre_r, centre_c`),
    `mask_area_mm2` and `mask_diameter_mm` (diameter of the disc with the same area) of a 2D mask.

    An empty mask has no geometry: callers skip such nodules, so this raises `ValueError`.
    """
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        raise ValueError("empty mask")
    area = float(rows.size) * float(spacing[0]) * float(spacing[1])
    return {
        "bbox_r0": int(rows.min()), "bbox_c0": int(cols.min()),
        "bbox_r1": int(rows.max()) + 1, "bbox_c1": int(cols.max()) + 1,
        "centre_r": round(float(rows.mean()), 2), "centre_c": round(float(cols.mean()), 2),
        "mask_area_mm2": round(area, 3),
        "mask_diameter_mm": round(2.0 * math.sqrt(area / math.pi), 3),
    }


def crop_box(
    bbox: tuple[int, int, int, int], shape: tuple[int, int], margin: int | tuple[int, int, int, int]
) -> tuple[int, int, int, int]:
    """The bbox `(r0, c0, r1, c1)` grown by `margin` pixels (one value or top, left, bottom, right),
    clipped to an image of `shape`."""
    top, left, bottom, right = (margin,) * 4 if isinstance(margin, int) else margin
    r0, c0, r1, c1 = bbox
    return (max(0, r0 - top), max(0, c0 - left), min(shape[0], r1 + bottom), min(shape[1], c1 + right))


def shift_geometry(geom: dict[str, float | int], r0: int, c0: int) -> dict[str, float | int]:
    """The same geometry in the coordinates of a crop whose top-left corner is `(r0, c0)`."""
    out = dict(geom)
    for key in ("bbox_r0", "bbox_r1"):
        out[key] = int(geom[key]) - r0
    for key in ("bbox_c0", "bbox_c1"):
        out[key] = int(geom[key]) - c0
    out["centre_r"] = round(float(geom["centre_r"]) - r0, 2)
    out["centre_c"] = round(float(geom["centre_c"]) - c0, 2)
    return out
