"""Localisation scores: exact values on synthetic maps whose answer is known by construction."""

from __future__ import annotations

import numpy as np
import pytest

from ctnodule.errors import ConfigError
from ctnodule.explain.localization import (
    area_fraction,
    bbox_mask,
    cam_mass_in_mask,
    pointing_game,
    region_mask,
)


@pytest.fixture
def mask() -> np.ndarray:
    m = np.zeros((64, 48), dtype=np.uint8)
    m[20:30, 10:22] = 1
    return m


def test_map_entirely_inside_the_mask_scores_one(mask):
    cam = np.zeros(mask.shape, dtype=np.float32)
    cam[22:28, 12:20] = np.linspace(0.2, 1.0, 48).reshape(6, 8)
    assert cam_mass_in_mask(cam, mask) == 1.0
    assert pointing_game(cam, mask) is True


def test_map_entirely_outside_the_mask_scores_zero(mask):
    cam = np.zeros(mask.shape, dtype=np.float32)
    cam[40:60, 30:45] = 1.0
    assert cam_mass_in_mask(cam, mask) == 0.0
    assert pointing_game(cam, mask) is False


def test_partial_map_scores_its_share_and_a_flat_map_scores_the_area(mask):
    cam = np.zeros(mask.shape)
    cam[25, 15] = 3.0  # inside
    cam[50, 40] = 1.0  # outside
    assert cam_mass_in_mask(cam, mask) == pytest.approx(0.75)
    flat = np.ones(mask.shape)
    assert cam_mass_in_mask(flat, mask) == pytest.approx(area_fraction(mask)) == pytest.approx(120 / (64 * 48))


def test_pointing_game_tolerance_in_pixels(mask):
    cam = np.zeros(mask.shape)
    cam[33, 15] = 1.0  # 4 rows below the mask's last row (29)
    assert not pointing_game(cam, mask)
    assert not pointing_game(cam, mask, tolerance=3)
    assert pointing_game(cam, mask, tolerance=4)
    with pytest.raises(ConfigError):
        pointing_game(cam, mask, tolerance=-1)


def test_empty_map_has_no_score_and_points_nowhere(mask):
    cam = np.zeros(mask.shape)
    assert np.isnan(cam_mass_in_mask(cam, mask))
    assert pointing_game(cam, mask) is False


def test_bad_inputs_are_config_errors(mask):
    with pytest.raises(ConfigError, match="one shape"):
        cam_mass_in_mask(np.ones((10, 10)), mask)
    with pytest.raises(ConfigError, match="non-negative"):
        cam_mass_in_mask(-np.ones(mask.shape), mask)
    with pytest.raises(ConfigError, match="finite"):
        pointing_game(np.full(mask.shape, np.nan), mask)


def test_bbox_mask_is_half_open_and_clipped():
    box = bbox_mask((10, 10), 2, 3, 5, 7)
    assert box.sum() == 3 * 4 and box[2, 3] and box[4, 6] and not box[5, 6]
    assert bbox_mask((10, 10), -5, -5, 3.2, 20).sum() == 4 * 10  # rounded outwards, clipped


def test_region_prefers_the_mask_then_the_bbox(mask):
    region, source = region_mask(mask.shape, mask, {"bbox_r0": 0, "bbox_c0": 0, "bbox_r1": 5, "bbox_c1": 5})
    assert source == "mask" and region.sum() == mask.sum()
    region, source = region_mask(mask.shape, None, {"bbox_r0": 0, "bbox_c0": 0, "bbox_r1": 5, "bbox_c1": 5})
    assert source == "bbox" and region.sum() == 25
    region, source = region_mask(mask.shape, np.zeros_like(mask), {"bbox_r0": float("nan")})
    assert region is None and source == "none"
    with pytest.raises(ConfigError):
        region_mask((5, 5), mask)


def test_grow_mask_by_3mm_is_a_disc_of_radius_3mm_in_physical_units():
    from ctnodule.explain.localization import grow_mask

    point = np.zeros((21, 21), bool)
    point[10, 10] = True
    iso = grow_mask(point, 3.0, (1.0, 1.0))
    assert iso.sum() == 29  # integer points with r^2 <= 9
    aniso = grow_mask(point, 3.0, (0.5, 1.0))  # rows are 0.5 mm: the region reaches 6 rows, 3 columns
    rows, cols = np.nonzero(aniso)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (4, 16, 7, 13)
    assert np.array_equal(grow_mask(point, 0.0, (1.0, 1.0)), point)
    assert not grow_mask(np.zeros((5, 5), bool), 3.0, (1.0, 1.0)).any()
