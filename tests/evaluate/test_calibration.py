"""Calibration metrics on examples small enough to compute by hand, and their bootstrap form."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ctnodule.evaluate.bootstrap import resample_counts
from ctnodule.evaluate.calibration import (
    adaptive_bins,
    calibration_metrics,
    reliability,
    weighted_calibration,
)
from ctnodule.evaluate.metrics import compute_metrics


def test_binary_by_hand():
    # 4 samples, 2 equal-mass bins: {0.1, 0.3} and {0.6, 0.8}
    y = np.array([0, 1, 0, 1])
    p1 = np.array([0.1, 0.3, 0.6, 0.8])
    p = np.column_stack([1 - p1, p1])
    m = calibration_metrics(y, p, n_bins=2)
    # bin 1: mean conf 0.2, observed 0.5 -> |gap| 0.3 x 2; bin 2: mean 0.7, observed 0.5 -> 0.2 x 2
    assert m["ece"] == pytest.approx((0.3 * 2 + 0.2 * 2) / 4)
    assert m["brier"] == pytest.approx((0.01 + 0.49 + 0.36 + 0.04) / 4)
    assert m["log_loss"] == pytest.approx(-(math.log(0.9) + math.log(0.3) + math.log(0.4) + math.log(0.8)) / 4)


def test_multiclass_is_top_label_and_brier_sums_classes():
    y = np.array([0, 2])
    p = np.array([[0.7, 0.2, 0.1], [0.5, 0.1, 0.4]])
    m = calibration_metrics(y, p, n_bins=1)
    # top-label: confidences 0.7 (right), 0.5 (wrong) -> one bin, |1.2 - 1| / 2
    assert m["ece"] == pytest.approx(0.1)
    assert m["brier"] == pytest.approx(((0.3**2 + 0.2**2 + 0.1**2) + (0.5**2 + 0.1**2 + 0.6**2)) / 2)
    assert m["log_loss"] == pytest.approx(-(math.log(0.7) + math.log(0.4)) / 2)


def test_perfectly_calibrated_scores_have_small_ece_and_bins_hold_equal_counts():
    rng = np.random.default_rng(0)
    p1 = rng.uniform(size=20000)
    y = (rng.uniform(size=p1.size) < p1).astype(int)
    p = np.column_stack([1 - p1, p1])
    assert calibration_metrics(y, p)["ece"] < 0.02
    assert np.bincount(adaptive_bins(p1)).tolist() == [2000] * 10
    over = np.column_stack([1 - p1**0.3, p1**0.3])  # over-confident malignant scores
    assert calibration_metrics(y, over)["ece"] > 0.15
    rel = reliability(y, p)
    assert rel["count"].sum() == 20000 and np.all(np.abs(rel["observed"] - rel["confidence"]) < 0.03)


def test_weighted_equals_explicit_resample():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 5, 200)
    p = rng.dirichlet(np.ones(5), 200)
    counts = resample_counts(200, 5, seed=3)
    got = weighted_calibration(y, p, counts)
    for b in range(5):
        idx = np.repeat(np.arange(200), counts[b].astype(int))
        exact = compute_metrics(y[idx], p[idx], "multiclass")
        assert got["brier"][b] == pytest.approx(exact["brier"])
        assert got["log_loss"][b] == pytest.approx(exact["log_loss"])
        assert got["ece"][b] == pytest.approx(exact["ece"])
