"""From slices to what a network eats: (N, 3, H, W) float32 images in [0, 1].

Channels: a grey slice is repeated 3 times (ImageNet stems expect RGB); with `channels="context"` and a
dataset that has 2.5D stacks, the 3 channels are the slice and its two neighbours (the middle 3 of a
(2k+1, H, W) stack), which gives a 2D backbone some 3D shape for free. (Tabular features — size, shape —
come from `ctnodule.models.descriptors`.)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ctnodule.data.dataset import SliceDataset
from ctnodule.data.slice import Slice
from ctnodule.errors import DataError


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
