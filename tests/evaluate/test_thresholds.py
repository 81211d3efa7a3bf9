"""Decision thresholds chosen on the other folds and scored on the held-out one."""

from __future__ import annotations

import numpy as np
import pytest

from ctnodule.evaluate.thresholds import choose_threshold, threshold_table


def test_choose_threshold_by_hand():
    y = np.array([0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1])
    s = np.array([0.1, 0.2, 0.7, 0.3, 0.4, 0.5, 0.6, 0.8, 0.85, 0.9, 0.92, 0.95, 0.99])
    # Youden: t = 0.3 calls all 10 positives (sens 1) and 1 of 3 negatives (spec 2/3): J = 0.667, the best
    assert choose_threshold(y, s, "youden") == pytest.approx(0.3)
    # 90 % of 10 positives = 9: the highest threshold still calling 9 is 0.4
    assert choose_threshold(y, s, "sens90") == pytest.approx(0.4)
    assert choose_threshold(y, s, "sens95") == pytest.approx(0.3)


def test_cross_fitted_table_reaches_its_sensitivity_on_held_out_folds():
    rng = np.random.default_rng(0)
    n = 1000
    y = (rng.uniform(size=n) < 0.3).astype(int)
    score = 1 / (1 + np.exp(-(2.5 * y - 1.2 + rng.normal(size=n))))
    groups = np.arange(n) // 2
    fold = groups % 5
    table = threshold_table(y, score, fold, groups, n_boot=200)
    assert 0.85 < table["sens90"]["sensitivity"] < 0.95
    assert table["sens95"]["sensitivity"] > table["sens90"]["sensitivity"] - 0.01
    assert table["sens95"]["specificity"] < table["youden"]["specificity"]
    for rule in ("youden", "sens90", "sens95"):
        row = table[rule]
        assert len(row["threshold_per_fold"]) == 5
        for stat in ("sensitivity", "specificity", "ppv", "npv"):
            lo, hi = row["ci"][stat]
            assert lo <= row[stat] <= hi
