"""bootstrap_ci: weighted resamples equal explicit resamples, determinism, the CI holds the estimate,
and the patient-cluster bootstrap is wider when nodules of a patient are correlated."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from ctnodule.errors import ConfigError
from ctnodule.evaluate.bootstrap import bootstrap_ci, resample_counts, weighted_metrics
from ctnodule.evaluate.metrics import compute_metrics, metric_keys

from .conftest import noisy_scores


@pytest.mark.parametrize("task,k", [("binary", 2), ("multiclass", 5)])
def test_weighted_resample_equals_explicit_resample(task, k):
    y, p = noisy_scores(120, k, 1.0, seed=5)
    p = np.round(p, 1)  # many tied scores: the AUC must count ties as one half, like sklearn
    counts = resample_counts(len(y), 6, seed=9)
    fast = weighted_metrics(y, p, task, counts)
    for b in range(len(counts)):
        idx = np.repeat(np.arange(len(y)), counts[b].astype(int))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            slow = compute_metrics(y[idx], p[idx], task)
        for key in metric_keys(task)[1:]:
            assert fast[key][b] == pytest.approx(slow[key], nan_ok=True), (key, b)


def test_deterministic_for_a_seed_and_seed_matters():
    y, p = noisy_scores(300, 5, 0.9, seed=6)
    a = bootstrap_ci(y, p, "multiclass", n_boot=200, seed=1)
    assert a == bootstrap_ci(y, p, "multiclass", n_boot=200, seed=1)
    assert a != bootstrap_ci(y, p, "multiclass", n_boot=200, seed=2)
    assert set(a) == set(metric_keys("multiclass")) - {"n"}


@pytest.mark.parametrize("task,k", [("binary", 2), ("multiclass", 5)])
def test_interval_contains_the_point_estimate(task, k):
    y, p = noisy_scores(800, k, 0.9, seed=7)
    groups = np.arange(800) // 2
    point = compute_metrics(y, p, task)
    for ci in (bootstrap_ci(y, p, task, seed=0), bootstrap_ci(y, p, task, seed=0, groups=groups)):
        for key, (lo, hi) in ci.items():
            assert lo <= point[key] <= hi, key
            assert hi - lo < 0.2, key


def test_cluster_bootstrap_resamples_whole_patients_and_is_wider():
    y, p = noisy_scores(200, 2, 1.0, seed=8)
    # each patient's nodule seen four times: four rows, one piece of evidence
    y4, p4, patients = np.repeat(y, 4), np.repeat(p, 4, axis=0), np.repeat(np.arange(200), 4)
    counts = resample_counts(len(y4), 50, seed=0, groups=patients)
    assert (counts.reshape(50, 200, 4).std(axis=2) == 0).all()
    naive = bootstrap_ci(y4, p4, "binary", seed=0)
    cluster = bootstrap_ci(y4, p4, "binary", seed=0, groups=patients)
    honest = bootstrap_ci(y, p, "binary", seed=0)
    width = {name: ci["roc_auc"][1] - ci["roc_auc"][0] for name, ci in
             (("naive", naive), ("cluster", cluster), ("honest", honest))}
    assert width["cluster"] > 1.5 * width["naive"]
    assert width["cluster"] == pytest.approx(width["honest"], rel=0.25)


def test_bad_parameters():
    y, p = noisy_scores(20, 2, 1.0, seed=0)
    with pytest.raises(ConfigError, match="n_boot"):
        bootstrap_ci(y, p, "binary", n_boot=1)
    with pytest.raises(ConfigError, match="groups"):
        bootstrap_ci(y, p, "binary", groups=np.arange(5))
