"""Gamma transform on [0, 1] images: gamma > 1 darkens mid-greys, so lung parenchyma recedes and
solid tissue (nodules, vessels) stands out; 0 and 1 stay fixed."""

from __future__ import annotations

import numpy as np

from ctnodule.data.slice import Slice
from ctnodule.errors import ConfigError, DataError
from ctnodule.preprocess.base import STEPS, Step


def gamma_array(x: np.ndarray, gamma: float) -> np.ndarray:
    """x ** gamma on a [0, 1] float image (float32)."""
    return np.power(x.astype(np.float32, copy=False), np.float32(gamma), dtype=np.float32)


def check_unit_range(x: np.ndarray, where: str, sample: str = "?") -> None:
    """Steps after the window expect [0, 1]; HU here means the window step is missing or misplaced."""
    if not np.issubdtype(x.dtype, np.floating) or x.min() < 0.0 or x.max() > 1.0:
        raise DataError(
            f"{where}: sample {sample!r}: expected a float image in [0, 1] (range {x.min():g}..{x.max():g}, "
            f"dtype {x.dtype}); put the 'window' step before {where!r}"
        )


@STEPS.register("gamma")
class Gamma(Step):
    """x -> x ** gamma on the windowed image."""

    name = "gamma"

    def __init__(self, gamma: float = 1.35):
        self.gamma = gamma

    def apply(self, s: Slice) -> Slice:
        if not self.gamma > 0:
            raise ConfigError(f"gamma: gamma must be > 0, got {self.gamma}")
        check_unit_range(s.array, self.name, s.meta.get("sample_id", "?"))
        return s.replace(array=gamma_array(s.array, self.gamma))
