"""A CT slice in memory: pixels plus the physical spacing and metadata that travel with them."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np


@dataclasses.dataclass
class Slice:
    """One 2D slice (or a 2.5D stack, shape (k, H, W)) with its pixel spacing in mm.

    `array` is int16 HU straight from an importer, float32 after preprocessing. `spacing` is
    (row_mm, col_mm): physical scale is the strongest malignancy signal, so no step may lose it —
    a transform that resamples updates it. `meta` carries the manifest row (ids, labels, bbox, ...).
    """

    array: np.ndarray
    spacing: tuple[float, float] = (1.0, 1.0)
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)
    mask: np.ndarray | None = None

    def replace(self, **changes: Any) -> Slice:
        """A copy with some fields changed (transforms return new slices, never mutate)."""
        return dataclasses.replace(self, **changes)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)


def slice_thickness(s: Slice, default: float) -> float:
    """The z spacing (mm) of `s`'s 2.5D stack: the manifest's `slice_thickness` when it is a positive number,
    else `default` (callers differ in what a missing thickness should mean)."""
    try:
        value = float(s.meta.get("slice_thickness"))
    except (TypeError, ValueError):
        return default
    return value if np.isfinite(value) and value > 0 else default
