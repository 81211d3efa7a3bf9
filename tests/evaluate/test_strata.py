"""Metrics by nodule size and the score-3-excluded AUC."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from ctnodule.evaluate.strata import as_binary, auc_excluding_3, by_size


def test_a_size_only_model_gains_nothing_within_bands_while_a_model_that_sees_the_label_does():
    rng = np.random.default_rng(0)
    n = 400
    sizes = rng.uniform(3, 30, n)
    y = np.clip(np.round(sizes / 7 + rng.normal(0, 1, n)), 0, 4).astype(int)  # size-driven, noisy
    size_p = np.exp(-0.5 * (np.arange(5)[None] - sizes[:, None] / 7) ** 2)
    size_p /= size_p.sum(axis=1, keepdims=True)
    seer = 0.5 * size_p + 0.5 * np.eye(5)[y]
    groups = np.array([f"P{i}" for i in range(n)])
    got = by_size(y, seer, size_p, sizes, "multiclass", groups, n_boot=200)
    assert list(got) == ["<6 mm", "6-10 mm", "10-20 mm", ">20 mm"] and sum(b["n"] for b in got.values()) == n
    for band in got.values():
        if "roc_auc" in band:
            assert band["roc_auc"]["diff"] > 0 and band["roc_auc"]["ci"][0] > 0
    same = by_size(y, size_p, size_p, sizes, "multiclass", groups, n_boot=50)
    assert all(b.get("qwk", {"diff": 0})["diff"] == 0 for b in same.values())
    rows = (sizes >= 10) & (sizes < 20)
    yb, pb = as_binary(y, seer, "multiclass")
    assert got["10-20 mm"]["roc_auc"]["a"] == pytest.approx(roc_auc_score(yb[rows], pb[rows, 1]))


def test_auc_excluding_3_scores_only_the_nodules_not_rated_3():
    malignancy = np.array([1, 2, 3, 3, 4, 5, 1, 5])
    p_malignant = np.array([0.1, 0.6, 0.9, 0.0, 0.5, 0.8, 0.2, 0.7])  # the 3s would hurt; they are left out
    groups = np.arange(8).astype(str)
    got = auc_excluding_3(malignancy, np.column_stack([1 - p_malignant, p_malignant]), "binary", groups, n_boot=50)
    keep = malignancy != 3
    assert got["n"] == 6 and got["roc_auc"] == pytest.approx(roc_auc_score(malignancy[keep] >= 4, p_malignant[keep]))
    assert got["roc_auc_with_3"] == pytest.approx(roc_auc_score(malignancy >= 4, p_malignant))
    five = np.zeros((8, 5))
    five[:, 4], five[:, 0] = p_malignant, 1 - p_malignant
    assert auc_excluding_3(malignancy, five, "multiclass", groups, n_boot=50)["roc_auc"] == got["roc_auc"]


def test_a_band_with_too_few_malignant_nodules_gets_counts_only():
    sizes = np.array([3.0] * 30 + [15.0] * 30)
    y = np.array([0] * 27 + [1] * 3 + [0] * 15 + [1] * 15)
    p = np.column_stack([1 - sizes / 20, sizes / 20])
    got = by_size(y, p, p, sizes, "binary", np.arange(60).astype(str), n_boot=20)
    assert got["<6 mm"] == {"n": 30, "n_malignant": 3} and "roc_auc" in got["10-20 mm"]
