"""From slices to what a network eats: (N, 3, H, W) float32 images in [0, 1] and the nodule size.

Channels: a grey slice is repeated 3 times (ImageNet stems expect RGB); with `channels="context"` and a
dataset that has 2.5D stacks, the 3 channels are the slice and its two neighbours (the middle 3 of a
(2k+1, H, W) stack), which gives a 2D backbone some 3D shape for free. The size feature is the log of
the nodule's equivalent diameter measured from its mask x pixel spacing (the column importers write,
else the mask itself), standardised with training-fold statistics.
"""

from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np

from ctnodule.data.dataset import SliceDataset, _present
from ctnodule.data.slice import Slice
from ctnodule.errors import DataError

#: smallest diameter fed to log(): a point-like mask must not become -inf (same as the size baseline)
MIN_SIZE_MM = 0.5


def load_slices(dataset: SliceDataset, channels: str) -> list[Slice]:
    """Every sample as a `Slice` in HU: a (3, H, W) neighbour stack where `channels == "context"` and the
    dataset has one, else the (H, W) slice. Mask and manifest row travel along."""
    out = []
    for i in range(len(dataset)):
        s = dataset[i]
        if channels == "context":
            stack = dataset.context(i)
            if stack is not None:
                s = s.replace(array=middle_three(stack))
        out.append(s)
    return out


def middle_three(stack: np.ndarray) -> np.ndarray:
    """The centre slice and its nearest neighbours of a (k, H, W) stack (k >= 3)."""
    if stack.ndim != 3 or stack.shape[0] < 3:
        raise DataError(f"a 2.5D context stack must be (k>=3, H, W), got {stack.shape}")
    c = stack.shape[0] // 2
    return stack[c - 1: c + 2]


def to_images(slices: Sequence[Slice]) -> np.ndarray:
    """Preprocessed slices -> (N, 3, H, W) float32: stacks as they are, grey slices repeated."""
    if not slices:
        raise DataError("no samples to turn into images (empty dataset or every sample filtered out)")
    arrays = []
    for s in slices:
        a = np.asarray(s.array, dtype=np.float32)
        arrays.append(np.repeat(a[None], 3, axis=0) if a.ndim == 2 else a)
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise DataError(f"preprocessed samples differ in shape {sorted(shapes)[:3]}; the pipeline must end "
                        "with a fixed-size step")
    return np.stack(arrays)


def sizes_mm(slices: Sequence[Slice]) -> np.ndarray:
    """Nodule size (mm) per slice: manifest `mask_diameter_mm`, else `diameter_mm`, else from the mask;
    NaN where none is known (callers fill it with the training median)."""
    out = np.full(len(slices), np.nan)
    for i, s in enumerate(slices):
        for key in ("mask_diameter_mm", "diameter_mm"):
            v = s.meta.get(key)
            if _present(v) and np.isfinite(float(v)) and float(v) > 0:
                out[i] = float(v)
                break
        else:
            if s.mask is not None and np.any(s.mask):
                area = float(np.count_nonzero(s.mask)) * s.spacing[0] * s.spacing[1]
                out[i] = 2.0 * math.sqrt(area / math.pi)
    return out


class SizeScaler:
    """log(size) standardised with the training fold's mean/sd; missing sizes get the training median."""

    def __init__(self) -> None:
        pass

    def fit(self, size_mm: np.ndarray) -> "SizeScaler":
        x = np.log(np.maximum(size_mm[np.isfinite(size_mm)], MIN_SIZE_MM))
        if x.size == 0:
            raise DataError("the model uses the nodule size, but no training sample has one (no "
                            "mask_diameter_mm/diameter_mm column and no masks); train with size_feature off")
        self.median_ = float(np.median(x))
        self.mean_ = float(x.mean())
        self.sd_ = float(x.std()) or 1.0
        return self

    def transform(self, size_mm: np.ndarray) -> np.ndarray:
        """(N, 1) float32 feature; a NaN size is filled (with a warning: the model then guesses size)."""
        x = np.log(np.maximum(np.asarray(size_mm, dtype=float), MIN_SIZE_MM))
        missing = ~np.isfinite(x)
        if missing.any():
            warnings.warn(f"{int(missing.sum())} sample(s) have no nodule size (no mask/diameter): using the "
                          "training median size for them", UserWarning, stacklevel=2)
            x = np.where(missing, self.median_, x)
        return ((x - self.mean_) / self.sd_).astype(np.float32)[:, None]

    def state(self) -> dict[str, float]:
        return {"median_": self.median_, "mean_": self.mean_, "sd_": self.sd_}

    @classmethod
    def from_state(cls, state: dict[str, float]) -> "SizeScaler":
        obj = cls()
        obj.median_, obj.mean_, obj.sd_ = state["median_"], state["mean_"], state["sd_"]
        return obj
