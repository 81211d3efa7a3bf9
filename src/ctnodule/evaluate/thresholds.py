"""Decision thresholds a user would pick for a binary run, chosen where they are not scored.

Rules: `youden` (maximise sensitivity + specificity - 1), `sens90` / `sens95` (the highest threshold whose
sensitivity is at least 90 % / 95 %). A sample is called malignant when P(malignant) >= threshold.

How (cross-fitted on the out-of-fold predictions): for each CV fold k, every rule is applied to the pooled
out-of-fold predictions of the OTHER folds (their labels and scores; fold k's labels are never looked at)
and the threshold it gives is applied to fold k's predictions. The calls of all folds are pooled and scored:
sensitivity, specificity, PPV, NPV, with 95 % patient-bootstrap CIs (patients resampled, thresholds held
fixed). One caveat: the other folds' scores come from models that were trained with fold k among their
training data, so this is not fully nested; their labels, which choose the threshold, are other patients'.
`threshold_all` is the rule applied to all out-of-fold predictions: the threshold to use with the final model.
"""

from __future__ import annotations

import numpy as np

from ctnodule.errors import DataError
from ctnodule.evaluate.bootstrap import resample_counts

RULES = {"youden": None, "sens90": 0.90, "sens95": 0.95}
RULE_NAMES = {"youden": "Youden (max sens + spec)", "sens90": "90 % sensitivity", "sens95": "95 % sensitivity"}
STATS = ("sensitivity", "specificity", "ppv", "npv")


def choose_threshold(y: np.ndarray, score: np.ndarray, rule: str) -> float:
    """The threshold rule `rule` picks on labels `y` (0/1) and malignant scores `score`."""
    from sklearn.metrics import roc_curve

    if rule not in RULES:
        raise DataError(f"unknown threshold rule {rule!r}; expected one of {sorted(RULES)}")
    if len(np.unique(y)) < 2:
        raise DataError("choosing a threshold needs both classes among the training folds' predictions")
    fpr, tpr, thr = roc_curve(y, score, drop_intermediate=False)  # thresholds decreasing, tpr increasing
    target = RULES[rule]
    best = int(np.argmax(tpr - fpr)) if target is None else int(np.argmax(tpr >= target - 1e-12))
    return float(min(thr[best], 1.0))  # roc_curve's first threshold is +inf: nobody called malignant


def threshold_table(y: np.ndarray, score: np.ndarray, fold: np.ndarray, groups: np.ndarray | None = None,
                    n_boot: int = 1000, seed: int = 0) -> dict:
    """{rule: {sensitivity, specificity, ppv, npv, ci: {stat: [lo, hi]}, threshold_per_fold, threshold_all}}
    plus "how": the procedure in words (see the module doc)."""
    y = np.asarray(y, int)
    score = np.asarray(score, float)
    fold = np.asarray(fold)
    folds = np.unique(fold)
    if len(folds) < 2:
        raise DataError("cross-fitted thresholds need at least 2 folds of out-of-fold predictions")
    counts = resample_counts(len(y), n_boot, seed, groups)
    out: dict = {"how": "chosen on the other folds' out-of-fold predictions, applied to each held-out fold; "
                        "pooled; 95 % patient-bootstrap CIs with thresholds fixed"}
    for rule in RULES:
        called = np.zeros(len(y), dtype=bool)
        per_fold = []
        for k in folds:
            held = fold == k
            t = choose_threshold(y[~held], score[~held], rule)
            called[held] = score[held] >= t
            per_fold.append(t)
        point = _stats(y, called, np.ones((1, len(y))))
        boot = _stats(y, called, counts)
        ci = {}
        for stat in STATS:
            finite = boot[stat][np.isfinite(boot[stat])]
            ci[stat] = [float(v) for v in np.percentile(finite, [2.5, 97.5])] if len(finite) else [None, None]
        out[rule] = {**{s: float(point[s][0]) for s in STATS}, "ci": ci, "threshold_per_fold": per_fold,
                     "threshold_all": choose_threshold(y, score, rule)}
    return out


def _stats(y: np.ndarray, called: np.ndarray, counts: np.ndarray) -> dict[str, np.ndarray]:
    """Sensitivity, specificity, PPV, NPV for each row of sample weights `counts` (NaN where undefined)."""
    pos = y == 1
    tp, fn = counts @ (pos & called), counts @ (pos & ~called)
    tn, fp = counts @ (~pos & ~called), counts @ (~pos & called)
    with np.errstate(divide="ignore", invalid="ignore"):
        return {"sensitivity": tp / (tp + fn), "specificity": tn / (tn + fp), "ppv": tp / (tp + fp),
                "npv": tn / (tn + fn)}
