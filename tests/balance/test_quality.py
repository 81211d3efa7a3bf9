import numpy as np
import pytest

from ctnodule.balance.quality import FeatureExtractor, fid, kid
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
