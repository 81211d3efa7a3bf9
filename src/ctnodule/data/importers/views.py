"""Write one nodule as its `full` and/or `nodule` samples, with the same columns for every source.

The `full` view is the whole axial slice; the `nodule` view is the crop around the nodule's bbox plus a
margin that grows with the nodule (`nodule_margin`), so crop sizes vary like the seed's 44x45 ... 124x108
and keep the nodule's physical scale (no resizing here). Both carry their mask and 2.5D context stack
cropped the same way. bbox/centre columns are in the coordinates of the sample's own array; the crop's
origin in the full slice is `crop_r0, crop_c0`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ctnodule.data.measure import crop_box, mask_geometry, shift_geometry
from ctnodule.data.writer import DatasetWriter
from ctnodule.vocab import VIEWS


def nodule_margin(bbox: tuple[int, int, int, int]) -> int:
    """Pixels added on each side of the bbox: 15 + 0.6 x the bbox's longer side (a 7-px nodule gets a
    ~45-px crop, a 43-px one ~125 px, the seed's range)."""
    return round(15 + 0.6 * max(bbox[2] - bbox[0], bbox[3] - bbox[1]))


def sample_id(patient_id: str, nodule_id: str | int, view: str) -> str:
    """`<patient>_N<nodule>_<view>`: stable, readable, unique per nodule and view."""
    return f"{patient_id}_N{nodule_id}_{view}"


def add_nodule_views(
    writer: DatasetWriter,
    *,
    image: np.ndarray,
    mask: np.ndarray,
    spacing: tuple[float, float],
    patient_id: str,
    nodule_id: str | int,
    malignancy: int,
    source: str,
    context: np.ndarray | None = None,
    views: Sequence[str] = VIEWS,
    margin: int | tuple[int, int, int, int] | None = None,
    **extra: Any,
) -> list[dict[str, Any]]:
    """Add the requested views of one nodule (`image`/`mask` 2D, `context` (2k+1, H, W)); returns rows."""
    geom = mask_geometry(mask, spacing)
    bbox = (geom["bbox_r0"], geom["bbox_c0"], geom["bbox_r1"], geom["bbox_c1"])
    rows = []
    common = dict(patient_id=patient_id, nodule_id=nodule_id, malignancy=malignancy, source=source,
                  orig_rows=image.shape[0], orig_cols=image.shape[1], **extra)
    for view in views:
        if view == "full":
            r0, c0, r1, c1 = 0, 0, image.shape[0], image.shape[1]
            view_geom = {**geom, "crop_r0": 0, "crop_c0": 0}
        else:
            m = nodule_margin(bbox) if margin is None else margin
            r0, c0, r1, c1 = crop_box(bbox, image.shape, m)
            view_geom = {**shift_geometry(geom, r0, c0), "crop_r0": r0, "crop_c0": c0}
        ctx = None if context is None else np.ascontiguousarray(context[:, r0:r1, c0:c1])
        rows.append(writer.add(
            np.ascontiguousarray(image[r0:r1, c0:c1]), spacing, sample_id=sample_id(patient_id, nodule_id, view),
            view=view, context=ctx, mask=np.ascontiguousarray(mask[r0:r1, c0:c1]), **view_geom, **common,
        ))
    return rows
