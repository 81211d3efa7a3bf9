"""Calibration inside the training part: it must repair a deliberately mis-calibrated head."""

from __future__ import annotations

import numpy as np
import pytest

from ctnodule.errors import ConfigError
from ctnodule.evaluate.calibration import calibration_metrics
from ctnodule.evaluate.metrics import compute_metrics
from ctnodule.models.calibration import fit_calibrated, split_calibrated
from ctnodule.models.heads import LogRegHead


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.uniform(size=n) < 0.3).astype(int)
    X = rng.normal(size=(n, 6)) + 1.2 * y[:, None] * np.array([1, 0.5, 0, 0, 0, 0])
    return X.astype(np.float32), y, np.arange(n) // 2  # two rows per patient


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_calibration_lowers_ece_of_a_squashed_head_on_new_patients(method):
    X, y, groups = _data(1200, 0)
    Xt, yt, _ = _data(4000, 1)
    # a far too strong L2 penalty squashes every probability towards the class prior: ranks stay right,
    # probabilities do not
    plain = LogRegHead(C=1e-4).fit(X, y, n_extra=1)
    fixed = fit_calibrated(LogRegHead(C=1e-4), X, y, 1, groups, method, seed=0)
    p_plain, p_fixed = plain.predict_proba(Xt, 2), fixed.predict_proba(Xt, 2)
    ece_plain = calibration_metrics(yt, p_plain)["ece"]
    ece_fixed = calibration_metrics(yt, p_fixed)["ece"]
    assert ece_plain > 0.1
    assert ece_fixed < ece_plain / 3
    assert compute_metrics(yt, p_fixed, "binary")["roc_auc"] > compute_metrics(yt, p_plain, "binary")["roc_auc"] - 0.01
    pipeline, calibrators = split_calibrated(fixed.model_)
    assert len(calibrators) == 1 and hasattr(pipeline, "decision_function")


def test_inner_folds_are_patient_grouped_and_bad_method_is_named():
    X, y, groups = _data(200, 2)
    head = fit_calibrated(LogRegHead(), X, y, 1, groups, "platt", seed=0)
    for train, test in head.model_.cv:
        assert not set(groups[train]) & set(groups[test])
    with pytest.raises(ConfigError, match="calibration"):
        fit_calibrated(LogRegHead(), X, y, 1, groups, "temperature")
