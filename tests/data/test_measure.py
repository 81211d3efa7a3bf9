"""Mask geometry shared by the importers: bbox, centre, area, equivalent diameter, crop boxes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ctnodule.data.measure import crop_box, equivalent_diameter_mm, mask_geometry, shift_geometry


def test_geometry_of_a_rectangle():
    mask = np.zeros((50, 60), bool)
    mask[10:20, 30:34] = True
    g = mask_geometry(mask, (0.5, 2.0))
    assert (g["bbox_r0"], g["bbox_c0"], g["bbox_r1"], g["bbox_c1"]) == (10, 30, 20, 34)
    assert (g["centre_r"], g["centre_c"]) == (14.5, 31.5)
    assert g["mask_area_mm2"] == pytest.approx(40 * 1.0)
    assert g["mask_diameter_mm"] == pytest.approx(2 * math.sqrt(40 / math.pi), abs=1e-3)


def test_empty_mask_is_refused():
    with pytest.raises(ValueError):
        mask_geometry(np.zeros((4, 4), bool), (1.0, 1.0))


def test_crop_box_clips_to_image_and_shift_moves_bbox():
    assert crop_box((5, 5, 10, 10), (20, 30), 8) == (0, 0, 18, 18)
    assert crop_box((5, 5, 10, 10), (20, 30), (1, 2, 3, 4)) == (4, 3, 13, 14)
    g = {"bbox_r0": 5, "bbox_c0": 6, "bbox_r1": 9, "bbox_c1": 10, "centre_r": 7.0, "centre_c": 8.0}
    s = shift_geometry(g, 4, 3)
    assert (s["bbox_r0"], s["bbox_c0"], s["bbox_r1"], s["bbox_c1"], s["centre_r"], s["centre_c"]) == (1, 3, 5, 7, 3.0, 5.0)


def test_equivalent_diameter_is_the_batch_form_of_mask_geometry():
    rr, cc = np.mgrid[:64, :64]
    masks = np.stack([np.hypot(rr - 32, cc - 32) < r for r in (5, 10, 20)]).astype(np.uint8)
    spacing = (0.5, 0.7)
    batch = equivalent_diameter_mm(masks, spacing)
    assert batch.shape == (3,) and float(equivalent_diameter_mm(masks[1], spacing)) == batch[1]
    expected = [mask_geometry(m, spacing)["mask_diameter_mm"] for m in masks]
    np.testing.assert_allclose(batch, expected, atol=5e-4)
    assert abs(equivalent_diameter_mm(masks[1], (1.0, 1.0)) - 20.0) < 0.3  # a disc of radius 10 px at 1 mm/px
