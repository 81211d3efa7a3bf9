"""HU window + normalisation to [0, 1]: the first intensity step of every view.

The window (level/width in Hounsfield units) decides which tissue keeps contrast; the lung window
(L = -600, W = 1500) keeps parenchyma, vessels and solid nodules apart. Because it needs HU, it is also
where an 8-bit screenshot or an already normalised image is caught: those would window to a flat image
and train silently on nothing.
"""

from __future__ import annotations

import numpy as np

from ctnodule.data.slice import Slice
from ctnodule.errors import ConfigError, DataError
from ctnodule.preprocess.base import STEPS, Step


def window_array(hu: np.ndarray, level: float, width: float) -> np.ndarray:
    """Map HU in [level - width/2, level + width/2] linearly to [0, 1], clipping outside (float32)."""
    lo = level - width / 2.0
    out = (hu.astype(np.float32) - np.float32(lo)) * np.float32(1.0 / width)
    return np.clip(out, 0.0, 1.0, out=out)


def check_hu(array: np.ndarray, sample: str = "?") -> None:
    """Refuse pixels that cannot be Hounsfield units of a CT slice.

    A CT slice in HU always holds air or lung below 0 HU; uint8 data, or values all inside 0..255, are
    what a PNG/JPEG screenshot or an already normalised image looks like.
    """
    if array.dtype == np.uint8:
        raise DataError(
            f"sample {sample!r}: uint8 pixels look like an 8-bit image (PNG/JPEG export), not Hounsfield "
            "units; import the DICOM/NIfTI/NRRD instead, or set check_hu: false if you really mean it"
        )
    lo, hi = float(array.min()), float(array.max())
    if lo >= 0.0 and hi <= 255.0:
        raise DataError(
            f"sample {sample!r}: values lie within 0..255 (min {lo:g}, max {hi:g}) with no negatives: this "
            "looks like an 8-bit or already normalised image, not HU (a CT slice always has air < 0 HU); "
            "import the DICOM/NIfTI/NRRD instead, or set check_hu: false if you really mean it"
        )


@STEPS.register("window")
class Window(Step):
    """HU window to [0, 1] float32. `check_hu` refuses input that does not look like HU."""

    name = "window"

    def __init__(self, level: float = -600.0, width: float = 1500.0, check_hu: bool = True):
        self.level = level
        self.width = width
        self.check_hu = check_hu

    def apply(self, s: Slice) -> Slice:
        if not self.width > 0:
            raise ConfigError(f"window: width must be > 0 HU, got {self.width}")
        if self.check_hu:
            check_hu(s.array, s.meta.get("sample_id", "?"))
        return s.replace(array=window_array(s.array, self.level, self.width))
