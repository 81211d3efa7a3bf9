"""CLAHE (contrast-limited adaptive histogram equalisation) through OpenCV.

OpenCV's CLAHE works on uint8/uint16, so the [0, 1] image is quantised to `bits` bits, equalised and
scaled back to [0, 1] float32. A 2.5D stack is equalised slice by slice.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from ctnodule.data.slice import Slice
from ctnodule.errors import ConfigError
from ctnodule.preprocess.base import STEPS, Step, per_channel
from ctnodule.preprocess.gamma import check_unit_range


@functools.lru_cache(maxsize=16)
def _clahe(clip_limit: float, tiles: tuple[int, int]) -> cv2.CLAHE:
    """One OpenCV CLAHE object per setting (creating it costs as much as applying it to a 64 px crop)."""
    return cv2.createCLAHE(clipLimit=clip_limit, tileGridSize=(tiles[1], tiles[0]))


def clahe_array(x: np.ndarray, clip_limit: float, tiles: tuple[int, int], bits: int = 8) -> np.ndarray:
    """CLAHE of one [0, 1] float (H, W) image; returns [0, 1] float32."""
    top = 255 if bits == 8 else 65535
    q = np.rint(x * top).astype(np.uint8 if bits == 8 else np.uint16)
    return _clahe(float(clip_limit), (int(tiles[0]), int(tiles[1]))).apply(q).astype(np.float32) * np.float32(1.0 / top)


@STEPS.register("clahe")
class Clahe(Step):
    """CLAHE with `clip_limit` and a `tiles` = (rows, cols) grid, on `bits`-bit quantised pixels."""

    name = "clahe"

    def __init__(self, clip_limit: float = 2.5, tiles: tuple[int, int] = (8, 8), bits: int = 8):
        self.clip_limit = clip_limit
        self.tiles = tiles
        self.bits = bits

    def apply(self, s: Slice) -> Slice:
        if self.bits not in (8, 16):
            raise ConfigError(f"clahe: bits must be 8 or 16 (OpenCV CLAHE types), got {self.bits}")
        if len(self.tiles) != 2 or min(self.tiles) < 1:
            raise ConfigError(f"clahe: tiles must be two positive ints (rows, cols), got {self.tiles}")
        if not self.clip_limit > 0:
            raise ConfigError(f"clahe: clip_limit must be > 0, got {self.clip_limit}")
        check_unit_range(s.array, self.name, s.meta.get("sample_id", "?"))
        return s.replace(array=per_channel(clahe_array, s.array, self.clip_limit, tuple(self.tiles), self.bits))
