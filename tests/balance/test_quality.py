import numpy as np
import pytest

from ctnodule.balance.quality import (
    FeatureExtractor,
    compare,
    fid,
    kid,
    mask_statistics,
    nearest,
    precision_recall,
)
from ctnodule.errors import ConfigError


def test_kid_near_zero_for_one_distribution_and_positive_for_two():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(300, 32)), rng.normal(size=(300, 32))
    same_mean, same_sd = kid(a, b, subsets=30, subset_size=100)
    assert abs(same_mean) < 3 * same_sd + 1e-3
    shifted, shifted_sd = kid(a, rng.normal(size=(300, 32)) + 1.0, subsets=30, subset_size=100)
    assert shifted > 10 * max(shifted_sd, abs(same_mean))
    # a set against itself is not two independent draws: the estimate is -2/m (mean k(x,x) - mean k(x,y)),
    # small against a real difference
    identical, _ = kid(a, a, subsets=10, subset_size=300)
    assert abs(identical) < 0.1 * shifted


def test_fid_is_the_mean_shift_for_equal_covariances():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(500, 8))
    assert fid(a, a) == pytest.approx(0.0, abs=1e-6)
    shift = np.arange(8) / 4
    assert fid(a, a + shift) == pytest.approx(float((shift ** 2).sum()), rel=1e-6)


def test_bad_feature_shapes_are_clear_errors():
    with pytest.raises(ConfigError, match="equal D"):
        kid(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(ConfigError, match="at least 2"):
        fid(np.zeros((1, 3)), np.zeros((5, 3)))


def test_feature_extractor_uses_imagenet_lite0():
    fx = FeatureExtractor()
    imgs = np.random.default_rng(0).random((4, 64, 64), dtype=np.float32)
    feats = fx(imgs)
    assert feats.shape == (4, 1280) and np.isfinite(feats).all()
    assert "ImageNet" in fx.weights_status
    np.testing.assert_allclose(fx(imgs[:, None]), feats, rtol=1e-5)  # (N, 1, H, W) is the same input


def test_fid_matches_the_textbook_formula():
    from scipy import linalg

    rng = np.random.default_rng(2)
    a = rng.normal(size=(400, 12))
    b = rng.normal(size=(300, 12)) @ rng.normal(size=(12, 12)) * 0.3 + 1.0
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    textbook = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real)
    assert fid(a, b) == pytest.approx(textbook, rel=1e-8)


def test_precision_recall_separates_realistic_from_collapsed_samples():
    rng = np.random.default_rng(3)
    real = rng.normal(size=(300, 8))
    same_p, same_r = precision_recall(real, rng.normal(size=(300, 8)))
    assert same_p > 0.8 and same_r > 0.8
    collapsed = np.zeros((300, 8)) + rng.normal(size=(300, 8)) * 0.05  # every sample near one mode
    p, r = precision_recall(real, collapsed)
    assert p > 0.8 and r < 0.2  # realistic but without variety
    far_p, _ = precision_recall(real, rng.normal(size=(300, 8)) + 6.0)
    assert far_p < 0.05


def test_nearest_finds_an_exact_copy():
    rng = np.random.default_rng(4)
    ref = rng.normal(size=(50, 5))
    idx, dist = nearest(ref[[7, 3]] + 1e-9, ref, n=2)
    assert idx[:, 0].tolist() == [7, 3] and dist[:, 0].max() < 1e-6 and (dist[:, 1] > dist[:, 0]).all()


def test_compare_reads_synthetic_against_a_same_size_real_reference():
    rng = np.random.default_rng(5)
    y = np.repeat([0, 1], 100)
    groups = np.arange(200) // 2  # two samples per patient
    real = rng.normal(size=(200, 6)) + y[:, None]
    good = rng.normal(size=(200, 6)) + y[:, None]
    table = compare(real, y, groups, good, y, repeats=5).set_index(["comparison", "metric"])
    bad = compare(real, y, groups, good + 3.0, y, repeats=5).set_index(["comparison", "metric"])
    ref = ("real A vs real B (reference)", "KID")
    syn = ("real A vs synthetic", "KID")
    assert table.loc[syn, "ci_low"] <= table.loc[ref, "ci_high"] and bad.loc[syn, "ci_low"] > table.loc[ref, "ci_high"]
    assert table.loc[ref, "n per side"] == "100"
    with pytest.raises(ConfigError, match="real class counts"):
        compare(real, y, groups, good[:20], y[:20], repeats=1)


def test_mask_statistics_measure_size_in_mm():
    masks = np.zeros((2, 20, 20), np.uint8)
    masks[0, 5:15, 5:15] = 1  # 100 px at 0.5 mm/px = 25 mm^2 -> equivalent diameter 5.64 mm
    images = np.full((2, 1, 20, 20), 0.5, np.float32)
    table = mask_statistics(images, masks, np.array([0, 0]), (0.5, 0.5), ["1"], "real")
    assert table.loc[0, "n"] == 2 and table.loc[0, "empty masks"] == "50%"
    assert table.loc[0, "diameter mm"].startswith("2.8 ±")  # mean over a 5.6 mm and an empty (0 mm) mask
