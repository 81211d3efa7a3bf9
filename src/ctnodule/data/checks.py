"""Is this image a CT slice we can trust? Checked where a user hands ctnodule an image (`import folder`,
`predict`), so a wrong input is refused with its file name instead of silently becoming a wrong answer or
failing later inside training (issue 11).

Refused: a header without pixel spacing (guessing 1 mm/px changes what a fixed-mm crop sees, and the
prediction with it) unless `--spacing` is given; a constant image (a blank or failed export); an image
whose values all lie in 0..255 (an 8-bit screenshot/PNG export, not Hounsfield units) unless allowed; a
slice smaller than `MIN_SIDE` pixels; a 3D volume, which `read_slice` would otherwise reduce to its middle
slice, unless allowed.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import numpy as np

from ctnodule.errors import ConfigError, DataError

#: what `--allow` can let through: the middle slice of a 3D volume; an image holding only 0..255
ALLOW = ("volume", "0-255")
MIN_SIDE = 8  # pixels; the smallest real LIDC VOI crop is 43 x 43


def check_allow(allow: Collection[str]) -> tuple[str, ...]:
    """`allow` as a tuple, each value one of `ALLOW`."""
    unknown = sorted(set(allow) - set(ALLOW))
    if unknown:
        raise ConfigError(f"--allow {unknown[0]!r}: expected one of {', '.join(ALLOW)}")
    return tuple(allow)


def fill_spacing(spacing: tuple[float, ...], given: float | None, path: str | Path) -> tuple[float, float]:
    """(row, col) pixel spacing in mm: the header's, else `given` (`--spacing`); neither is a `DataError`."""
    row_col = tuple(float(s) for s in spacing[-2:])
    if len(row_col) == 2 and all(np.isfinite(s) and s > 0 for s in row_col):
        return row_col[0], row_col[1]
    if given is None:
        raise DataError("the header gives no pixel spacing; pass --spacing MM (the pixel size in mm): ctnodule "
                        "will not guess 1 mm/px, which changes the prediction", path)
    if not given > 0:
        raise ConfigError(f"--spacing {given}: must be a pixel size in mm > 0")
    return float(given), float(given)


def check_ct_slice(array: np.ndarray, path: str | Path, allow: Collection[str] = ()) -> None:
    """Raise `DataError` naming `path` when the 2D `array` cannot be a CT slice in Hounsfield units."""
    if array.ndim != 2:
        raise DataError(f"shape {array.shape}; expected one 2D slice", path)
    if min(array.shape) < MIN_SIDE:
        raise DataError(f"{array.shape[0]} x {array.shape[1]} pixels: too small for a CT slice (at least "
                        f"{MIN_SIDE} x {MIN_SIDE})", path)
    low, high = array.min().item(), array.max().item()
    if low == high:
        raise DataError(f"constant image (every pixel is {low}): a blank or failed export, not a CT slice", path)
    if low >= 0 and high <= 255 and "0-255" not in allow:
        raise DataError(f"values only span {low}..{high}, inside 0..255: an 8-bit image (screenshot or PNG "
                        "export), not CT in Hounsfield units (air is -1000); export HU, or pass --allow 0-255 "
                        "if this really is HU", path)
