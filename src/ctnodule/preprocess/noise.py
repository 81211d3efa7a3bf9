"""Noise filter: the variance of the Laplacian per slice, thresholded at a percentile of the TRAINING set.

High Laplacian variance means strong pixel-to-pixel jumps: quantum noise, streaks, motion. `fit` learns
the threshold (default: the 98th percentile, i.e. drop the noisiest 2 %) on training slices only and
stores it, so validation/test slices are judged by the training threshold. A constant slice (variance 0,
e.g. a blank export or a full slice whose lung mask came out empty) carries no image at all and is
dropped too. The step never changes pixels: it records `laplacian_variance`, `noise_keep` and
`noise_reason` in `meta`, and `Pipeline.keep_mask` turns those into the kept/dropped decision.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import cv2
import numpy as np

from ctnodule.data.slice import Slice
from ctnodule.errors import ConfigError, DataError
from ctnodule.preprocess.base import STEPS, Step, centre_plane

#: variances at or below this count as a constant image
CONSTANT_EPS = 1e-12


def laplacian_variance(x: np.ndarray) -> float:
    """Variance of the 3x3 Laplacian of one (H, W) image (OpenCV; variance accumulated in float64)."""
    return float(cv2.Laplacian(x.astype(np.float32, copy=False), cv2.CV_32F).var(dtype=np.float64))


@STEPS.register("noise")
class NoiseFilter(Step):
    """Mark slices noisier than the training `percentile` (and constant ones) as dropped."""

    name = "noise"
    needs_fit = True

    def __init__(self, percentile: float = 98.0, drop_constant: bool = True):
        self.percentile = percentile
        self.drop_constant = drop_constant

    def fit(self, slices: Iterable[Slice]) -> NoiseFilter:
        if not 0.0 < self.percentile <= 100.0:
            raise ConfigError(f"noise: percentile must be in (0, 100], got {self.percentile}")
        var = np.array([laplacian_variance(centre_plane(s.array)) for s in slices], dtype=float)
        if var.size == 0:
            raise DataError("noise: cannot learn a threshold from an empty training set")
        informative = var[var > CONSTANT_EPS] if self.drop_constant else var
        if informative.size == 0:
            raise DataError("noise: every training slice is constant (Laplacian variance 0); check the input")
        self.threshold_ = float(np.percentile(informative, self.percentile))
        self.n_fit_ = int(var.size)
        return self

    def fitted_state(self) -> dict[str, Any]:
        if not hasattr(self, "threshold_"):
            return {}
        return {"threshold_": self.threshold_, "n_fit_": self.n_fit_}

    def set_fitted_state(self, state: dict[str, Any]) -> NoiseFilter:
        self.threshold_ = float(state["threshold_"])
        self.n_fit_ = int(state.get("n_fit_", 0))
        return self

    def decide(self, variance: float) -> tuple[bool, str]:
        """(keep, reason) for one slice's Laplacian variance."""
        if self.drop_constant and variance <= CONSTANT_EPS:
            return False, "constant image (Laplacian variance 0)"
        if variance > self.threshold_:
            return False, f"noisier than the training {self.percentile:g}th percentile ({self.threshold_:.4g})"
        return True, ""

    def apply(self, s: Slice) -> Slice:
        var = laplacian_variance(centre_plane(s.array))
        keep, reason = self.decide(var)
        meta = dict(s.meta, laplacian_variance=var, noise_keep=keep, noise_reason=reason)
        return s.replace(meta=meta)
