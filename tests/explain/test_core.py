"""Frames: the heat map computed on the network's grid goes back onto the input slice's own grid."""

from __future__ import annotations

import numpy as np
import pytest

from ctnodule.data.slice import Slice
from ctnodule.explain.core import geometry_only, to_input_frame
from ctnodule.preprocess import Pipeline, create_step


def _slice(shape=(90, 70), spacing=(0.9, 0.8)) -> tuple[Slice, np.ndarray]:
    rr, cc = np.mgrid[: shape[0], : shape[1]]
    mask = ((rr - 30) ** 2 + (cc - 45) ** 2 <= 8**2).astype(np.uint8)
    hu = np.where(mask, 40, -850).astype(np.int16)
    return Slice(hu, spacing, {"sample_id": "s1", "bbox_r0": 22, "bbox_c0": 37, "bbox_r1": 39, "bbox_c1": 54},
                 mask), mask


@pytest.mark.parametrize("size", [
    {"mode": "resample", "size": [48, 48], "spacing_mm": 0.7, "centre": "mask"},
    {"mode": "resize", "size": [64, 64], "aspect": "pad"},
    {"mode": "resize", "size": [50, 40], "aspect": "stretch"},
])
def test_map_on_the_processed_nodule_lands_on_the_input_nodule(size):
    s, mask = _slice()
    pipe = Pipeline([create_step("size", size), create_step("window", {})], view="nodule")
    processed = pipe.transform(s)
    geo, affine = geometry_only(pipe, s)
    assert geo.array.shape == processed.array.shape
    assert geo.meta["bbox_r0"] == 22  # the real metadata is untouched by the probe
    cam = processed.mask.astype(np.float32)
    back = to_input_frame(cam, affine, mask.shape)
    assert back.shape == mask.shape and 0.0 <= back.min() and back.max() <= 1.0
    hit = back > 0.5
    iou = (hit & (mask > 0)).sum() / (hit | (mask > 0)).sum()
    assert iou > 0.8


def test_identity_when_the_pipeline_keeps_the_grid():
    s, _ = _slice((64, 64), (0.7, 0.7))
    pipe = Pipeline([create_step("window", {})], view="nodule")
    geo, affine = geometry_only(pipe, s)
    assert affine == (1.0, 0.0, 1.0, 0.0) and geo.array is s.array
    cam = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    assert np.allclose(to_input_frame(cam, affine, (64, 64)), cam, atol=1e-6)


def test_score_reports_heat_on_the_nodule_and_in_the_lungs():
    from ctnodule.explain.core import Explained, score

    cam = np.zeros((20, 20), np.float32)
    cam[2:4, 2:4] = 1.0   # 4 px on the nodule
    cam[10:14, 0:3] = 1.0  # 12 px in the lung, off the nodule
    cam[18:20, 18:20] = 1.0  # 4 px outside the lungs (e.g. the scanner table)
    nodule = np.zeros((20, 20), bool)
    nodule[1:5, 1:5] = True
    lung = np.zeros((20, 20), bool)
    lung[:16, :10] = True
    e = Explained(cam, cam, cam, nodule, "mask", np.array([0.3, 0.7]), 1, (1.0, 0.0, 1.0, 0.0), lung)
    s = score(e)
    assert s["cam_in_mask"] == pytest.approx(4 / 20) and s["pointing_game"] is True
    assert s["cam_in_lung"] == pytest.approx(16 / 20) and s["lung_area_fraction"] == pytest.approx(160 / 400)
    assert s["area_fraction"] == pytest.approx(16 / 400)
    none = score(Explained(cam, cam, cam, None, "none", np.array([1.0]), 0, (1.0, 0.0, 1.0, 0.0)))
    assert none["cam_in_mask"] is None and none["cam_in_lung"] is None


@pytest.mark.parametrize("mm_per_px, inside", [(1.0, True), (2.0, False)])
def test_score_against_the_nodule_grown_by_3mm_uses_the_pixel_spacing(mm_per_px, inside):
    from ctnodule.explain.core import Explained, score

    cam = np.zeros((20, 20), np.float32)
    cam[2:4, 2:4] = 1.0  # 4 px on the nodule
    cam[2:4, 6:8] = 1.0  # 4 px 2-3 px right of it: 2-3 mm at 1 mm/px (inside the 3-mm rim), 4-6 mm at 2 mm/px
    cam[15:18, 15:19] = 1.0  # 12 px far away
    nodule = np.zeros((20, 20), bool)
    nodule[1:5, 1:5] = True
    e = Explained(cam, cam, cam, nodule, "mask", np.array([0.3, 0.7]), 1, (1.0, 0.0, 1.0, 0.0),
                  spacing=(mm_per_px, mm_per_px))
    s = score(e)
    assert s["cam_in_mask"] == pytest.approx(4 / 20)
    assert s["cam_in_mask_3mm"] == pytest.approx((8 if inside else 4) / 20)
    assert s["area_fraction_3mm"] > s["area_fraction"] and s["pointing_game_3mm"] is True
