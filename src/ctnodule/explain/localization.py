"""Does the heat map fall on the nodule? Two scores against the nodule's mask (or its bbox).

- `cam_mass_in_mask`: the share of the map's total mass inside the nodule (the "energy-based pointing
  game" of Score-CAM). 1.0 = all heat on the nodule; a flat map scores the nodule's share of the image
  (`area_fraction`), which is the chance level to compare against.
- `pointing_game`: is the map's maximum on the nodule (within `tolerance` pixels)? Zhang et al.'s
  pointing game; the maximum is `np.argmax` (the first maximum in row-major order).
- `grow_mask`: the region grown by a margin in mm (`cam_in_mask_3mm` scores the map against the mask grown
  by 3 mm: a map of 4-mm cells cannot hug a 5-mm nodule's outline, but it should sit on the nodule and
  its immediate border; the flat-map level is that grown region's `area_fraction`).
Both take the map and the region in the same pixel frame; `region_mask` builds the region from a mask or,
when a dataset has no mask, from the manifest's bbox columns (`bbox_r0, bbox_c0, bbox_r1, bbox_c1`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import ndimage

from ctnodule.errors import ConfigError

BBOX_KEYS = ("bbox_r0", "bbox_c0", "bbox_r1", "bbox_c1")


def _check(cam: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    cam = np.asarray(cam, dtype=np.float64)
    mask = np.asarray(mask).astype(bool)
    if cam.ndim != 2 or cam.shape != mask.shape:
        raise ConfigError(f"heat map {cam.shape} and nodule mask {mask.shape} must be 2D arrays of one shape")
    if not np.isfinite(cam).all() or cam.min() < 0:
        raise ConfigError("heat map must be finite and non-negative")
    return cam, mask


def cam_mass_in_mask(cam: np.ndarray, mask: np.ndarray) -> float:
    """Fraction of the map's mass inside `mask`, in [0, 1]; NaN for a map with no mass (nothing to score)."""
    cam, mask = _check(cam, mask)
    total = cam.sum()
    if total <= 0:
        return float("nan")
    return float(np.clip(cam[mask].sum() / total, 0.0, 1.0))


def pointing_game(cam: np.ndarray, mask: np.ndarray, tolerance: float = 0.0) -> bool:
    """True when the map's maximum lies in `mask` or within `tolerance` pixels of it; False for an
    all-zero map (it points nowhere) or an empty mask."""
    cam, mask = _check(cam, mask)
    if tolerance < 0:
        raise ConfigError(f"tolerance must be >= 0 pixels, got {tolerance}")
    if cam.max() <= 0 or not mask.any():
        return False
    r, c = np.unravel_index(int(np.argmax(cam)), cam.shape)
    if mask[r, c]:
        return True
    if tolerance == 0:
        return False
    return bool(ndimage.distance_transform_edt(~mask)[r, c] <= tolerance)


def grow_mask(mask: np.ndarray, margin_mm: float, spacing: tuple[float, float]) -> np.ndarray:
    """`mask` grown by `margin_mm` (Euclidean, in mm, honouring anisotropic pixel `spacing` (row, col))."""
    mask = np.asarray(mask).astype(bool)
    if margin_mm < 0 or min(spacing) <= 0:
        raise ConfigError(f"grow_mask: margin {margin_mm} mm and spacing {spacing} must be >= 0 and > 0")
    if not mask.any() or margin_mm == 0:
        return mask.copy()
    return ndimage.distance_transform_edt(~mask, sampling=spacing) <= margin_mm


def area_fraction(mask: np.ndarray) -> float:
    """The region's share of the image: what a flat map would score in `cam_mass_in_mask`."""
    mask = np.asarray(mask).astype(bool)
    return float(mask.mean()) if mask.size else float("nan")


def bbox_mask(shape: tuple[int, int], r0: float, c0: float, r1: float, c1: float) -> np.ndarray:
    """A boolean (H, W) box, rows r0..r1-1 and columns c0..c1-1, rounded outwards and clipped to the image."""
    h, w = shape
    rr0, cc0 = max(int(np.floor(r0)), 0), max(int(np.floor(c0)), 0)
    rr1, cc1 = min(int(np.ceil(r1)), h), min(int(np.ceil(c1)), w)
    out = np.zeros((h, w), dtype=bool)
    if rr1 > rr0 and cc1 > cc0:
        out[rr0:rr1, cc0:cc1] = True
    return out


def region_mask(shape: tuple[int, int], mask: np.ndarray | None = None,
                meta: Mapping[str, Any] | None = None) -> tuple[np.ndarray | None, str]:
    """The nodule region in an (H, W) frame and where it came from: ("mask"), ("bbox") or (None, "none")."""
    if mask is not None:
        mask = np.asarray(mask).astype(bool)
        if mask.shape != tuple(shape):
            raise ConfigError(f"nodule mask {mask.shape} does not match the heat map {tuple(shape)}")
        if mask.any():
            return mask, "mask"
    meta = meta or {}
    values = [meta.get(k) for k in BBOX_KEYS]
    if all(isinstance(v, (int, float, np.integer, np.floating)) and np.isfinite(v) for v in values):
        box = bbox_mask(shape, *(float(v) for v in values))
        if box.any():
            return box, "bbox"
    return None, "none"
