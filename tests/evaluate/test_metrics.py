"""compute_metrics against scikit-learn and hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from ctnodule.errors import ConfigError, DataError
from ctnodule.evaluate.metrics import compute_metrics, metric_keys, quadratic_weighted_kappa

from .conftest import noisy_scores


def one_hot(labels: list[int], k: int) -> np.ndarray:
    return np.eye(k)[np.asarray(labels)]


@pytest.mark.parametrize("task,k", [("binary", 2), ("multiclass", 5)])
def test_keys_are_exactly_the_documented_ones(task, k):
    y, p = noisy_scores(300, k, 0.8, seed=1)
    m = compute_metrics(y, p, task)
    assert set(m) == set(metric_keys(task)) | {"per_class"}
    assert ("qwk" in m) == (task == "multiclass")
    assert sum(c["support"] for c in m["per_class"].values()) == m["n"] == 300


def test_multiclass_matches_sklearn():
    y, p = noisy_scores(500, 5, 0.9, seed=2)
    pred = p.argmax(axis=1)
    m = compute_metrics(y, p, "multiclass")
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert m["precision_macro"] == pytest.approx(skm.precision_score(y, pred, average="macro", zero_division=0))
    assert m["recall_macro"] == pytest.approx(skm.recall_score(y, pred, average="macro", zero_division=0))
    assert m["f1_macro"] == pytest.approx(skm.f1_score(y, pred, average="macro", zero_division=0))
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p, multi_class="ovr", average="macro"))
    assert m["qwk"] == pytest.approx(skm.cohen_kappa_score(y, pred, weights="quadratic", labels=range(5)))
    f1 = skm.f1_score(y, pred, average=None, labels=range(5))
    assert [m["per_class"][str(c + 1)]["f1"] for c in range(5)] == pytest.approx(f1)


def test_binary_matches_sklearn_and_accepts_a_probability_vector():
    y, p = noisy_scores(400, 2, 0.7, seed=3)
    m = compute_metrics(y, p, "binary")
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p[:, 1]))
    assert m["f1_macro"] == pytest.approx(skm.f1_score(y, p.argmax(1), average="macro"))
    assert compute_metrics(y, p[:, 1], "binary")["roc_auc"] == m["roc_auc"]


def test_perfect_predictions():
    y = np.array([0, 1, 2, 3, 4, 4, 2, 0])
    m = compute_metrics(y, one_hot(y, 5), "multiclass")
    for key in ("accuracy", "balanced_accuracy", "precision_macro", "recall_macro", "f1_macro", "roc_auc",
                "qwk", "within_one"):
        assert m[key] == 1.0, key


def test_shifted_by_one_hand_computed():
    # truth 1..5, each predicted one grade higher (5 stays 5): accuracy 1/5, all within one;
    # QWK by hand: observed disagreement 4/16, expected 100/80 (weights (i-j)^2/16) -> 1 - 0.25/1.25 = 0.8
    y = np.array([0, 1, 2, 3, 4])
    pred = np.array([1, 2, 3, 4, 4])
    m = compute_metrics(y, one_hot(pred, 5), "multiclass")
    assert m["accuracy"] == pytest.approx(0.2)
    assert m["within_one"] == 1.0
    assert m["qwk"] == pytest.approx(0.8)
    assert quadratic_weighted_kappa(y, np.clip(y + 2, 0, 4), 5) < m["qwk"]
    assert compute_metrics(y, one_hot(np.clip(y + 2, 0, 4), 5), "multiclass")["within_one"] == pytest.approx(0.4)  # diffs 2,2,2,1,0


def test_absent_class_is_nan_safe_and_said():
    y, p = noisy_scores(300, 5, 0.8, seed=4)
    keep = y != 4  # no malignancy-5 nodule in this fold
    y, p = y[keep], p[keep]
    with pytest.warns(UserWarning, match="absent from y_true"):
        m = compute_metrics(y, p, "multiclass")
    by_hand = np.mean([skm.roc_auc_score(y == c, p[:, c]) for c in range(4)])
    assert m["roc_auc"] == pytest.approx(by_hand)
    assert np.isnan(m["per_class"]["5"]["roc_auc"]) and m["per_class"]["5"]["support"] == 0
    assert all(np.isfinite(m[k]) for k in metric_keys("multiclass"))


def test_one_class_only_gives_nan_auc_not_an_error():
    with pytest.warns(UserWarning, match="one class"):
        m = compute_metrics(np.zeros(4, int), one_hot([0, 1, 0, 0], 2), "binary")
    assert np.isnan(m["roc_auc"]) and m["accuracy"] == 0.75


def test_bad_input_is_a_clear_error():
    with pytest.raises(DataError, match=r"expected \(3, 5\)"):
        compute_metrics(np.array([0, 1, 2]), np.ones((3, 2)) / 2, "multiclass")
    with pytest.raises(DataError, match="class indices"):
        compute_metrics(np.array([1, 2, 5]), np.ones((3, 5)) / 5, "multiclass")
    with pytest.raises(DataError, match="NaN"):
        compute_metrics(np.array([0, 1]), np.array([[np.nan, 1], [0, 1]]), "binary")
    with pytest.raises(ConfigError, match="unknown task"):
        compute_metrics(np.array([0, 1]), np.eye(2), "ordinal")
