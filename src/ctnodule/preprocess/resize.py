"""Size standardisation: every sample of a view leaves with one pixel shape.

Modes:
- `resample` (default for the nodule view): resample to a fixed `spacing_mm` per pixel, then crop/pad
  to `size` around the nodule (mask centroid, or the image centre when there is no mask). Physical scale
  is kept: a 20 mm nodule is 29 px wide in every sample, and size is the strongest malignancy signal.
- `resize` (the seed's recipe): stretch to `size`, or, when `size` is None, to a standard size learned in
  `fit` from the training shapes (the mean of the majority shapes). `aspect` = `pad` pads to a square
  first (no distortion), `stretch` resizes each axis on its own. A slice already at the target shape
  is left untouched, so the full view stays 512 x 512 unless `size` says otherwise.
Padding uses `fill` (0 = black, "no data", after the window step; use -1000 (air) when resizing HU).
The nodule mask and the lung mask follow every geometric change (nearest neighbour); `spacing` and the
manifest's centre/bbox columns are updated to the new pixel grid.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

import cv2
import numpy as np

from ctnodule.data.slice import Slice
from ctnodule.errors import ConfigError, DataError
from ctnodule.preprocess.base import LUNG_MASK, STEPS, Step, per_channel

MODES = ("resample", "resize")
ASPECTS = ("pad", "stretch")


def resize_array(a: np.ndarray, shape: tuple[int, int], nearest: bool = False) -> np.ndarray:
    """Resize one (H, W) array to `shape` (linear, or area when shrinking; nearest for masks)."""
    if a.shape == tuple(shape):
        return a
    if nearest:
        interp = cv2.INTER_NEAREST
    else:
        interp = cv2.INTER_AREA if shape[0] < a.shape[0] and shape[1] < a.shape[1] else cv2.INTER_LINEAR
    src = a.astype(np.uint8) if nearest else a.astype(np.float32, copy=False)
    out = cv2.resize(src, (int(shape[1]), int(shape[0])), interpolation=interp)
    if not nearest:
        # linear/area interpolation is a convex combination, but float rounding can overshoot the input's
        # range by ~1e-7 (1.0000001 after a [0, 1] window), which the pipeline's range check rejects
        out = np.clip(out, src.min(), src.max(), out=out)
    return out


def crop_pad(a: np.ndarray, top: int, left: int, shape: tuple[int, int], fill: float) -> np.ndarray:
    """The `shape` window of (H, W) `a` starting at (top, left); parts outside `a` are `fill`."""
    out = np.full(shape, fill, dtype=a.dtype)
    r0, c0 = max(top, 0), max(left, 0)
    r1, c1 = min(top + shape[0], a.shape[0]), min(left + shape[1], a.shape[1])
    if r1 > r0 and c1 > c0:
        out[r0 - top:r1 - top, c0 - left:c1 - left] = a[r0:r1, c0:c1]
    return out


def majority_shape(shapes: Iterable[tuple[int, int]], share: float = 0.5) -> tuple[int, int]:
    """The seed's standard size: the count-weighted mean of the most frequent shapes that together cover
    more than `share` of the samples (a majority), so rare outlier shapes do not pull it."""
    counts = Counter(tuple(int(v) for v in s) for s in shapes)
    if not counts:
        raise DataError("size: cannot learn a standard size from an empty training set")
    total, taken, acc = sum(counts.values()), [], 0
    for shape, n in counts.most_common():
        taken.append((shape, n))
        acc += n
        if acc > share * total:
            break
    w = np.array([n for _, n in taken], dtype=float)
    hw = np.array([s for s, _ in taken], dtype=float)
    mean = (hw * w[:, None]).sum(0) / w.sum()
    return round(mean[0]), round(mean[1])


def _map_meta(meta: dict[str, Any], scale: tuple[float, float], offset: tuple[int, int]) -> dict[str, Any]:
    """Carry manifest pixel coordinates (centre, bbox) through `new = old * scale - offset`."""
    out = dict(meta)
    for key, axis in (("centre_r", 0), ("bbox_r0", 0), ("bbox_r1", 0),
                      ("centre_c", 1), ("bbox_c0", 1), ("bbox_c1", 1)):
        v = out.get(key)
        if isinstance(v, (int, float, np.integer, np.floating)) and np.isfinite(v):
            out[key] = float(v) * scale[axis] - offset[axis]
    return out


@STEPS.register("size")
class Size(Step):
    """Standardise the pixel grid (see the module docstring for the modes)."""

    name = "size"

    def __init__(self, mode: str = "resample", size: tuple[int, int] | None = (64, 64),
                 spacing_mm: float = 0.7, aspect: str = "pad", centre: str = "mask", fill: float = 0.0):
        self.mode = mode
        self.size = size
        self.spacing_mm = spacing_mm
        self.aspect = aspect
        self.centre = centre
        self.fill = fill

    @property
    def needs_fit(self) -> bool:  # only the seed's learned standard size is data-derived
        return self.mode == "resize" and self.size is None

    def fit(self, slices: Iterable[Slice]) -> Size:
        self._check_params()
        if self.needs_fit:
            self.size_ = majority_shape(s.array.shape[-2:] for s in slices)
        return self

    def fitted_state(self) -> dict[str, Any]:
        return {"size_": list(self.size_)} if hasattr(self, "size_") else {}

    def set_fitted_state(self, state: dict[str, Any]) -> Size:
        if "size_" in state:
            self.size_ = tuple(int(v) for v in state["size_"])
        return self

    def _target(self) -> tuple[int, int]:
        size = self.size if self.size is not None else self.size_
        return int(size[0]), int(size[1])

    def _check_params(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"size: mode {self.mode!r} is not one of {MODES}")
        if self.aspect not in ASPECTS:
            raise ConfigError(f"size: aspect {self.aspect!r} is not one of {ASPECTS}")
        if self.centre not in ("mask", "image"):
            raise ConfigError(f"size: centre {self.centre!r} is not 'mask' or 'image'")
        if self.size is not None and (len(self.size) != 2 or min(self.size) < 2):
            raise ConfigError(f"size: size must be two ints >= 2 (rows, cols) or null, got {self.size}")
        if self.mode == "resample" and (self.size is None or not self.spacing_mm > 0):
            raise ConfigError("size: mode 'resample' needs size (rows, cols) and spacing_mm > 0")

    def apply(self, s: Slice) -> Slice:
        self._check_params()
        if self.mode == "resample":
            return self._resample(s)
        return self._resize(s)

    def _geom(self, s: Slice, fn, fill: float) -> Slice:
        """Apply one geometric op to the image (with `fill`), the nodule mask and the lung mask (0)."""
        array = per_channel(fn, s.array, False, fill)
        mask = None if s.mask is None else fn(s.mask, True, 0)
        meta = dict(s.meta)
        if meta.get(LUNG_MASK) is not None:
            meta[LUNG_MASK] = fn(meta[LUNG_MASK], True, 0)
        return s.replace(array=array, mask=mask, meta=meta)

    def _resample(self, s: Slice) -> Slice:
        h, w = s.array.shape[-2:]
        nh = max(2, round(h * s.spacing[0] / self.spacing_mm))
        nw = max(2, round(w * s.spacing[1] / self.spacing_mm))
        mask_r = None if s.mask is None else resize_array(s.mask, (nh, nw), nearest=True)
        if self.centre == "mask" and mask_r is not None and mask_r.any():
            rows, cols = np.nonzero(mask_r)
            cr, cc = (rows.min() + rows.max() + 1) / 2.0, (cols.min() + cols.max() + 1) / 2.0
        else:
            cr, cc = nh / 2.0, nw / 2.0
        th, tw = self._target()
        top, left = round(cr - th / 2.0), round(cc - tw / 2.0)

        def op(a: np.ndarray, nearest: bool, fill: float) -> np.ndarray:
            return crop_pad(resize_array(a, (nh, nw), nearest), top, left, (th, tw), fill)

        out = self._geom(s, op, self.fill)
        spacing = (s.spacing[0] * h / nh, s.spacing[1] * w / nw)
        return out.replace(spacing=spacing, meta=_map_meta(out.meta, (nh / h, nw / w), (top, left)))

    def _resize(self, s: Slice) -> Slice:
        self.check_is_fitted()
        th, tw = self._target()
        h, w = s.array.shape[-2:]
        if (h, w) == (th, tw):
            return s
        top = left = 0
        if self.aspect == "pad" and h != w:
            side = max(h, w)
            top, left = -((side - h) // 2), -((side - w) // 2)
            h = w = side

        def op(a: np.ndarray, nearest: bool, fill: float) -> np.ndarray:
            if (top, left) != (0, 0) or a.shape != (h, w):
                a = crop_pad(a, top, left, (h, w), fill)
            return resize_array(a, (th, tw), nearest)

        out = self._geom(s, op, self.fill)
        spacing = (s.spacing[0] * h / th, s.spacing[1] * w / tw)
        scale = (th / h, tw / w)
        return out.replace(spacing=spacing,
                           meta=_map_meta(out.meta, scale, (top * scale[0], left * scale[1])))
