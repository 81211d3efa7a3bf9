"""Nodule descriptors: known shapes give the geometry they must, and missing masks stay NaN."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ctnodule.data.slice import Slice
from ctnodule.errors import ConfigError
from ctnodule.models.descriptors import DESCRIPTOR_NAMES, TabularScaler, describe, tabular_features


def _disc(radius_px: float, n: int = 64) -> np.ndarray:
    r, c = np.mgrid[:n, :n]
    return (np.hypot(r - n / 2, c - n / 2) <= radius_px).astype(np.uint8)


def test_disc_diameter_and_roundness():
    mask = _disc(10)
    hu = np.where(mask, 40, -850).astype(np.int16)
    d = describe(Slice(hu, (0.5, 0.5), {}, mask))
    assert math.exp(d["log_diameter"]) == pytest.approx(10.0, rel=0.03)  # 2 * 10 px * 0.5 mm
    assert d["eccentricity"] < 0.2 and d["solidity"] > 0.9 and d["radial_cv"] < 0.05
    assert d["frac_solid"] == 1.0 and d["frac_ground_glass"] == 0.0
    assert d["contrast"] == pytest.approx((40 + 850) / 1000, rel=0.01)


def test_spiculated_shape_is_less_solid_and_less_round_than_a_disc():
    n = 64
    r, c = np.mgrid[:n, :n]
    angle = np.arctan2(r - n / 2, c - n / 2)
    star = (np.hypot(r - n / 2, c - n / 2) <= 8 + 5 * np.cos(7 * angle)).astype(np.uint8)
    hu = np.full((n, n), -850, np.int16)
    disc = describe(Slice(hu, (0.5, 0.5), {}, _disc(10)))
    spic = describe(Slice(hu, (0.5, 0.5), {}, star))
    assert spic["solidity"] < disc["solidity"] - 0.15
    assert spic["compactness"] < disc["compactness"] and spic["radial_cv"] > disc["radial_cv"] + 0.1


def test_manifest_diameter_wins_and_no_mask_gives_nan():
    s = Slice(np.zeros((8, 8), np.int16), (1.0, 1.0), {"mask_diameter_mm": 12.0})
    table = tabular_features([s], "descriptors")
    assert table.shape == (1, len(DESCRIPTOR_NAMES))
    assert table[0, 0] == pytest.approx(math.log(12.0)) and np.isnan(table[0, 1:]).all()


def test_scaler_fills_missing_with_training_median_and_warns():
    X = np.array([[1.0, 2.0], [3.0, np.nan], [5.0, 6.0]])
    sc = TabularScaler().fit(X)
    with pytest.warns(UserWarning, match="no nodule size"):
        out = sc.transform(np.array([[np.nan, 4.0]]))
    assert out[0, 0] == pytest.approx(0.0, abs=1e-6)  # the median (3) is the mean here
    with pytest.raises(ConfigError):
        TabularScaler().fit(np.full((3, 1), np.nan))


def test_radiomics_sets_read_the_3d_columns_or_compute_2d_and_name_the_fix():
    from ctnodule.data.radiomics import feature_names

    disc = _disc(10)
    hu = np.where(disc > 0, 40.0, -800.0)
    plain = Slice(hu, (0.7, 0.7), meta={"sample_id": "s1"}, mask=disc)
    two_d = tabular_features([plain, Slice(hu, (0.7, 0.7), meta={})], "radiomics2d")
    assert two_d.shape == (2, 102) and np.isfinite(two_d[0]).all() and np.isnan(two_d[1]).all()
    with pytest.raises(ConfigError, match="import voi --radiomics"):
        tabular_features([plain], "radiomics")
    names = feature_names(two_d=False)
    stored = Slice(hu, (0.7, 0.7), meta={n: float(i) for i, n in enumerate(names)}, mask=disc)
    assert tabular_features([stored], "radiomics").tolist() == [list(map(float, range(107)))]


def _blobs(seed: int, n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """A random HU slice and a mask of a few irregular blobs, some cut by the slice's edges."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    mask = ndi.gaussian_filter(rng.normal(size=(n, n + 7)), 2.5) > 0.08
    hu = rng.normal(-400, 300, size=mask.shape).astype(np.int16)
    return hu, mask


@pytest.mark.parametrize("seed", range(12))
def test_fast_morphology_and_hull_equal_scipy_and_scikit_image(seed):
    from scipy import ndimage as ndi
    from skimage.morphology import convex_hull_image

    from ctnodule.models.descriptors import _convex_hull_area, _dilate, _erode, _largest_region

    _, mask = _blobs(seed)
    assert mask.any() and (mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())
    np.testing.assert_array_equal(_erode(mask), ndi.binary_erosion(mask))
    for k in (1, 4):
        np.testing.assert_array_equal(_dilate(mask, k), ndi.binary_dilation(mask, iterations=k))
    region = _largest_region(mask)
    assert _convex_hull_area(region) == np.count_nonzero(convex_hull_image(region))


@pytest.mark.parametrize("seed", range(6))
def test_descriptors_near_the_slice_edge_equal_the_whole_slice_computation(seed):
    """describe() works on the mask's surroundings only; gradient, border and rim must still be what
    the whole slice gives, also where the nodule touches the slice's edge."""
    from scipy import ndimage as ndi

    hu, mask = _blobs(seed)
    spacing = (0.7, 0.6)
    d = describe(Slice(hu, spacing, {}, mask.astype(np.uint8)))
    h = hu.astype(np.float32)
    grad = np.hypot(ndi.sobel(h, 0) / (8 * spacing[0]), ndi.sobel(h, 1) / (8 * spacing[1])) / 1000
    border = mask & ~ndi.binary_erosion(mask)
    rim = ndi.binary_dilation(mask, iterations=max(1, round(3.0 / math.sqrt(spacing[0] * spacing[1])))) & ~mask
    assert d["grad_inside"] == float(grad[mask].mean())
    assert d["grad_boundary"] == float(grad[border].mean())
    assert d["rim_hu_mean"] == float(h[rim].mean()) / 1000
    assert d["hu_p50"] == np.percentile(h[mask], [10, 50, 90])[1] / 1000
