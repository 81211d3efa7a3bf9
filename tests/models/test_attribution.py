"""Attributions: additive to the model's logit, shap agreeing with the exact linear values, the one
informative feature ranked first, correlated twins grouped, reasons in words."""

from __future__ import annotations

import math

import numpy as np
from scipy.special import logit

from ctnodule.models.attribution import IMAGE, attribute, feature_groups, reasons
from ctnodule.models.calibration import fit_calibrated
from ctnodule.models.heads import LogRegHead, SVMHead

TAB = ["log_diameter", "log_major", "hu_p50", "compactness"]


def _data(n: int = 400, seed: int = 0, n_image: int = 12):
    """Image features (noise) + 4 descriptors: diameter drives the label, major axis is its twin."""
    rng = np.random.default_rng(seed)
    log_d = rng.normal(2.2, 0.5, n)
    tab = np.column_stack([log_d, log_d + rng.normal(0, 0.05, n), rng.normal(0, 0.1, n), rng.uniform(0, 1, n)])
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-4 * (log_d - 2.2)))).astype(int)
    X = np.hstack([rng.normal(size=(n, n_image)), (tab - tab.mean(0)) / tab.std(0)])
    return X, y, tab


def test_linear_attributions_sum_to_the_logit_and_shap_agrees():
    X, y, _ = _data()
    head = LogRegHead(image_pca=3).fit(X, y, n_extra=len(TAB))
    groups = [[n] for n in TAB]
    exact = attribute(head, X, TAB, groups)
    p = head.predict_proba(X, 2)[:, 1]
    decision = head.model_.decision_function(X)
    assert np.max(np.abs(exact.base + exact.values.sum(1) - decision)) < 1e-6
    assert np.max(np.abs(exact.output - logit(p))) < 1e-6
    assert exact.groups[0] == [IMAGE] and exact.values.shape == (len(X), 1 + len(TAB))
    shap_values = attribute(head, X[:15], TAB, groups, method="shap")
    assert np.max(np.abs(shap_values.values - exact.values[:15])) < 1e-3
    assert np.max(np.abs(shap_values.base - exact.base[:15])) < 1e-3


def test_multiclass_explains_the_predicted_class_and_svm_uses_shap_additively():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 8))
    y = np.digitize(X[:, 6] + 0.3 * rng.normal(size=300), [-1, -0.3, 0.3, 1])
    head = LogRegHead().fit(X, y, n_extra=2)
    a = attribute(head, X, ["hu_p50", "compactness"])
    assert np.array_equal(a.target, head.predict_proba(X, 5).argmax(1))
    assert np.max(np.abs(a.output - head.model_.decision_function(X)[np.arange(300), a.target])) < 1e-6
    svm = SVMHead(seed=0).fit(X[:, :4], (y > 2).astype(int), n_extra=2)
    s = attribute(svm, X[:10, :4], ["hu_p50", "compactness"])
    assert s.method == "kernel shap"
    assert np.max(np.abs(s.base + s.values.sum(1) - s.output)) < 1e-6


def test_the_only_informative_feature_ranks_first_and_twins_share_one_group():
    X, y, tab = _data(seed=1)
    groups = feature_groups(tab, TAB)
    assert ["log_diameter", "log_major"] in groups and ["hu_p50"] in groups
    head = LogRegHead(image_pca=3).fit(X, y, n_extra=len(TAB))
    a = attribute(head, X, TAB, groups)
    mean_abs = np.abs(a.values).mean(0)
    assert a.groups[int(np.argmax(mean_abs))] == ["log_diameter", "log_major"]
    words = reasons(a, tab, TAB, ["benign", "malignant"], top=2)
    big = int(np.argmax(tab[:, 0]))
    assert words[big].startswith(f"diameter {math.exp(tab[big, 0]):.0f} mm (+1 correlated): +")
    assert "toward malignant" in words[big].split(";")[0]


def test_platt_calibrated_attributions_explain_the_calibrated_log_odds():
    X, y, _ = _data(seed=2)
    head = fit_calibrated(LogRegHead(image_pca=3), X, y, len(TAB), np.arange(len(X)), "platt")
    a = attribute(head, X, TAB)
    assert "after Platt" in a.space
    assert np.max(np.abs(a.base + a.values.sum(1) - logit(head.predict_proba(X, 2)[:, 1]))) < 1e-6
    iso = fit_calibrated(LogRegHead(image_pca=3), X, y, len(TAB), np.arange(len(X)), "isotonic")
    assert "before calibration" in attribute(iso, X, TAB).space
