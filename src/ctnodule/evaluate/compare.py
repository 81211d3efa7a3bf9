"""Is model A better than model B on the same rows? A paired patient-bootstrap difference with a 95 % CI.

Two recipes scored on the same out-of-fold rows share their hard and easy nodules, so their metrics are
strongly correlated; two separate CIs that overlap say little. Here both are scored on the SAME patient
resamples and the difference is taken per resample: its percentile interval is the CI of the gain. The
interval excluding 0 is the evidence that A beats B on this data (not that it would on other hospitals).

Used for recipe choices (default vs radiomics, image-only vs fused) and for "gain over size alone".
"""

from __future__ import annotations

import numpy as np

from ctnodule.errors import DataError
from ctnodule.evaluate.bootstrap import resample_counts, weighted_metrics
from ctnodule.evaluate.metrics import check_inputs

#: the metrics a recipe comparison reports, per task
COMPARED = {"binary": ("roc_auc", "accuracy"), "multiclass": ("roc_auc", "qwk", "accuracy", "within_one")}


def paired_difference(
    y_true: np.ndarray, proba_a: np.ndarray, proba_b: np.ndarray, task: str, groups: np.ndarray | None = None,
    n_boot: int = 2000, seed: int = 0, level: float = 0.95,
) -> dict[str, dict[str, float | list[float]]]:
    """{metric: {"a", "b", "diff" (a - b), "ci" [lo, hi] of the difference, "p_a_not_better"}}.

    `groups` (patient ids) resamples patients. `p_a_not_better` is the share of resamples where a - b <= 0
    (a one-sided bootstrap p-value for "A is better"). Metrics undefined on the whole data are NaN.
    """
    y, pa = check_inputs(y_true, proba_a, task)
    _, pb = check_inputs(y_true, proba_b, task)
    counts = np.vstack([np.ones(len(y)), resample_counts(len(y), n_boot, seed, groups)])
    stats_a = weighted_metrics(y, pa, task, counts)
    stats_b = weighted_metrics(y, pb, task, counts)
    alpha = (1.0 - level) / 2.0 * 100.0
    out = {}
    for key in COMPARED[task]:
        diff = stats_a[key] - stats_b[key]
        boot = diff[1:][np.isfinite(diff[1:])]
        ci = np.percentile(boot, [alpha, 100.0 - alpha]) if len(boot) else [np.nan, np.nan]
        out[key] = {"a": float(stats_a[key][0]), "b": float(stats_b[key][0]), "diff": float(diff[0]),
                    "ci": [float(ci[0]), float(ci[1])],
                    "p_a_not_better": float(np.mean(boot <= 0)) if len(boot) else float("nan")}
    return out


def compare_oof(oof_a, oof_b, task: str, n_boot: int = 2000, seed: int = 0) -> dict:
    """`paired_difference` of two runs' out-of-fold predictions (frames with sample_id, patient_id, y_true,
    proba_k), on the sample_ids both hold; refuses runs whose labels for a sample differ."""
    from ctnodule.evaluate.summary import oof_arrays

    y, pa = oof_arrays(oof_a, task)
    _, pb = oof_arrays(oof_b, task)
    a = oof_a.assign(_row=np.arange(len(oof_a)))[["sample_id", "_row"]]
    b = oof_b.assign(_row=np.arange(len(oof_b)))[["sample_id", "_row"]]
    both = a.merge(b, on="sample_id", suffixes=("_a", "_b"))
    if both.empty:
        raise DataError("the two runs share no sample_id: they were not scored on the same data")
    ia, ib = both["_row_a"].to_numpy(), both["_row_b"].to_numpy()
    if (y[ia] != oof_b["y_true"].to_numpy(dtype=int)[ib]).any():
        raise DataError("the two runs give different labels to the same sample_id: different tasks or data")
    groups = oof_a["patient_id"].astype(str).to_numpy()[ia] if "patient_id" in oof_a.columns else None
    return {"n": len(both), **paired_difference(y[ia], pa[ia], pb[ib], task, groups, n_boot, seed)}
