"""Paired patient-bootstrap comparison of two models on the same out-of-fold rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ctnodule.errors import DataError
from ctnodule.evaluate.compare import compare_oof, paired_difference
from ctnodule.evaluate.metrics import compute_metrics


def _data(n=300, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 5, n)
    good = np.eye(5)[y] * 2 + rng.random((n, 5))
    noisy = rng.random((n, 5)) + np.eye(5)[y] * 0.3
    norm = lambda p: p / p.sum(axis=1, keepdims=True)
    return y, norm(good), norm(noisy), np.array([f"P{i // 2}" for i in range(n)])


def test_difference_is_the_metric_difference_and_its_ci_excludes_zero_for_a_clearly_better_model():
    y, good, noisy, groups = _data()
    got = paired_difference(y, good, noisy, "multiclass", groups, n_boot=300)
    for key in ("roc_auc", "qwk", "accuracy"):
        a, b = compute_metrics(y, good, "multiclass")[key], compute_metrics(y, noisy, "multiclass")[key]
        assert got[key]["a"] == pytest.approx(a) and got[key]["diff"] == pytest.approx(a - b)
        assert got[key]["ci"][0] > 0 and got[key]["p_a_not_better"] == 0
    swapped = paired_difference(y, noisy, good, "multiclass", groups, n_boot=300)
    assert swapped["qwk"]["ci"][1] < 0


def test_a_model_against_itself_differs_by_exactly_zero():
    y, good, _, groups = _data()
    got = paired_difference(y, good, good, "multiclass", groups, n_boot=100)
    assert all(v["diff"] == 0 and v["ci"] == [0, 0] for v in got.values())


def test_compare_oof_aligns_by_sample_id_and_refuses_different_labels():
    y, good, noisy, groups = _data(100)
    frame = lambda p: pd.DataFrame({"sample_id": [f"s{i}" for i in range(100)], "patient_id": groups,
                                    "y_true": y, **{f"proba_{k}": p[:, k] for k in range(5)}})
    a, b = frame(good), frame(noisy).iloc[::-1]
    direct = paired_difference(y, good, noisy, "multiclass", groups, n_boot=100)
    assert compare_oof(a, b, "multiclass", n_boot=100) == {"n": 100, **direct}
    c = frame(noisy).assign(y_true=(y + 1) % 5)
    with pytest.raises(DataError, match="different labels"):
        compare_oof(a, c, "multiclass")
