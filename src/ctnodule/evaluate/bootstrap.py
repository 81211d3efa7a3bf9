"""Bootstrap 95 % confidence intervals for every scalar metric, vectorised.

A resample is a vector of counts (how often each sample is drawn), so every metric becomes a weighted
statistic: a (n_boot, n) count matrix times one-hot indicators gives all weighted confusion matrices at
once, and ROC-AUC is the weighted Mann-Whitney statistic over tied-score groups. 1000 resamples of 800
samples take well under a second; no Python loop over resamples.

With `groups` (patient ids) the bootstrap resamples patients, not nodules (cluster bootstrap): nodules of
one patient are correlated, so resampling them independently gives intervals that are too narrow.
Resamples in which a metric is undefined (e.g. one class only) are left out of that metric's percentiles.
"""

from __future__ import annotations

import numpy as np

from ctnodule.errors import ConfigError
from ctnodule.evaluate.calibration import weighted_calibration
from ctnodule.evaluate.metrics import check_inputs, kappa_from_confusion


def bootstrap_ci(
    y_true: np.ndarray, proba: np.ndarray, task: str, n_boot: int = 1000, seed: int = 0,
    groups: np.ndarray | None = None, level: float = 0.95,
) -> dict[str, tuple[float, float]]:
    """Percentile `level` CIs {metric: (lo, hi)} for the scalar metrics of `compute_metrics` except `n`.

    `groups` (one id per sample, e.g. patient_id) switches to the cluster bootstrap. Deterministic for a
    given `seed`.
    """
    if n_boot < 2:
        raise ConfigError(f"n_boot must be >= 2, got {n_boot}")
    y, p = check_inputs(y_true, proba, task)
    counts = resample_counts(len(y), n_boot, seed, groups)
    stats = weighted_metrics(y, p, task, counts)
    alpha = (1.0 - level) / 2.0 * 100.0
    out = {}
    for key, values in stats.items():
        finite = values[np.isfinite(values)]
        if len(finite) == 0:
            out[key] = (float("nan"), float("nan"))
        else:
            lo, hi = np.percentile(finite, [alpha, 100.0 - alpha])
            out[key] = (float(lo), float(hi))
    return out


def resample_counts(n: int, n_boot: int, seed: int, groups: np.ndarray | None = None) -> np.ndarray:
    """(n_boot, n) draw counts per sample; with `groups`, whole groups are drawn with replacement."""
    rng = np.random.default_rng(seed)
    if groups is None:
        return rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(float)
    groups = np.asarray(groups)
    if len(groups) != n:
        raise ConfigError(f"groups has {len(groups)} entries for {n} samples")
    _, inverse = np.unique(groups.astype(str), return_inverse=True)
    n_groups = int(inverse.max()) + 1
    group_counts = rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=n_boot)
    return group_counts[:, inverse].astype(float)


def weighted_metrics(y: np.ndarray, p: np.ndarray, task: str, counts: np.ndarray) -> dict[str, np.ndarray]:
    """Every scalar metric (except n) of the data weighted by each row of `counts` -> {key: (n_boot,)}.

    Weighting by draw counts is identical to `compute_metrics` on the explicitly resampled data.
    """
    k = p.shape[1]
    pred = p.argmax(axis=1)
    pairs = np.zeros((len(y), k * k))
    pairs[np.arange(len(y)), y * k + pred] = 1.0
    conf = (counts @ pairs).reshape(-1, k, k)  # conf[b, true, pred]
    total = conf.sum(axis=(1, 2))
    support = conf.sum(axis=2)
    predicted = conf.sum(axis=1)
    tp = np.diagonal(conf, axis1=1, axis2=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.where(support > 0, tp / support, 0.0)
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
        in_true = support > 0
        in_any = in_true | (predicted > 0)
        out = {
            "accuracy": tp.sum(axis=1) / total,
            "balanced_accuracy": (recall * in_true).sum(axis=1) / in_true.sum(axis=1),
            "precision_macro": (precision * in_any).sum(axis=1) / in_any.sum(axis=1),
            "recall_macro": (recall * in_any).sum(axis=1) / in_any.sum(axis=1),
            "f1_macro": (f1 * in_any).sum(axis=1) / in_any.sum(axis=1),
        }
    out.update(weighted_calibration(y, p, counts))
    if task == "binary":
        out["roc_auc"] = weighted_auc(p[:, 1], y == 1, counts)
    else:
        aucs = np.stack([weighted_auc(p[:, c], y == c, counts) for c in range(k)], axis=1)
        with np.errstate(invalid="ignore"):
            defined = np.isfinite(aucs)
            out["roc_auc"] = np.where(defined.any(axis=1),
                                      np.nansum(aucs, axis=1) / np.maximum(defined.sum(axis=1), 1), np.nan)
        idx = np.arange(k)
        near = (np.abs(idx[:, None] - idx[None, :]) <= 1).astype(float)
        out["qwk"] = kappa_from_confusion(conf)
        out["within_one"] = (conf * near).sum(axis=(1, 2)) / total
    return out


def weighted_auc(score: np.ndarray, positive: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """ROC-AUC (ties count half) for each row of sample weights `counts`; NaN where a side has no weight."""
    order = np.argsort(score, kind="stable")
    sorted_score = score[order]
    starts = np.flatnonzero(np.r_[True, sorted_score[1:] != sorted_score[:-1]])  # tie groups, ascending
    weights = counts[:, order]
    hit = positive[order]
    pos = np.add.reduceat(weights * hit, starts, axis=1)  # (b, groups) positive weight per distinct score
    neg = np.add.reduceat(weights * ~hit, starts, axis=1)
    neg_below = np.cumsum(neg, axis=1) - neg
    n_pos, n_neg = pos.sum(axis=1), neg.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = (pos * (neg_below + 0.5 * neg)).sum(axis=1) / (n_pos * n_neg)
    return np.where((n_pos > 0) & (n_neg > 0), auc, np.nan)
