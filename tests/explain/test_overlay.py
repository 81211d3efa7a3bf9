"""Overlays: lung window for HU, the map's colours where it is hot/cold, the nodule outline drawn."""

from __future__ import annotations

import cv2
import numpy as np

from ctnodule.explain.overlay import overlay, sample_panels, to_display, write_png


def test_hu_gets_the_lung_window_and_unit_range_is_kept():
    hu = np.array([[-1400.0, -600.0], [150.0, 1000.0]], dtype=np.float32)
    assert np.allclose(to_display(hu), [[0.0, 0.5], [1.0, 1.0]])
    unit = np.array([[0.0, 0.25], [0.5, 1.0]], dtype=np.float32)
    assert np.array_equal(to_display(unit), unit)
    stack = np.stack([unit * 0, unit, unit * 0])
    assert np.array_equal(to_display(stack), unit)  # 2.5D: the centre slice


def test_overlay_is_red_where_hot_and_blue_where_cold():
    image = np.full((32, 32), 0.5, dtype=np.float32)
    cam = np.zeros((32, 32), dtype=np.float32)
    cam[:8, :8] = 1.0
    rgb = overlay(image, cam)
    assert rgb.shape == (32, 32, 3) and rgb.dtype == np.uint8
    hot, cold = rgb[2, 2].astype(int), rgb[20, 20].astype(int)
    assert hot[0] > hot[2] and cold[2] > cold[0]


def test_panels_show_the_outline_and_the_network_input_when_it_differs(tmp_path):
    image = np.full((40, 40), -800.0, dtype=np.float32)
    net = np.zeros((40, 40), dtype=np.float32)  # e.g. background removed: differs from the HU slice
    region = np.zeros((40, 40), bool)
    region[10:20, 10:20] = True
    cam = region.astype(np.float32)
    three = sample_panels(image, cam, region, net_input=net, min_side=120)
    two = sample_panels(image, cam, region, net_input=to_display(image), min_side=120)
    assert three.shape == (120, 3 * 120 + 2 * 4, 3) and two.shape == (120, 2 * 120 + 4, 3)
    green = (three[..., 1] == 255) & (three[..., 0] == 0) & (three[..., 2] == 0)
    assert green[:, :120].sum() > 100  # the contour on the first panel
    path = write_png(tmp_path / "s.png", three)
    back = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    assert np.array_equal(back, three)
