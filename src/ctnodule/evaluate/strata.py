"""Does the model see more than size? Metrics by nodule size, and the score-3-excluded AUC of the papers.

- `by_size`: nodules split at 6, 10 and 20 mm (measured mask diameter, the Lung-RADS/Fleischner-like
  bands). Within a band size varies little, so a model that only learned size falls towards AUC 0.5
  there. Per band: the binary ROC-AUC (5-class runs: P(4) + P(5)) and, for 5-class runs, QWK, each for
  the model and for the size-alone baseline on the same splits, with the paired patient-bootstrap CI of
  the gain (`compare.paired_difference`).
- `auc_excluding_3`: binary ROC-AUC over the nodules whose majority score is not 3 (NoduleMNIST3D, Pai et
  al. 2024 and most papers drop the indeterminate nodules; our own protocol keeps them as benign). The
  model is the same; only the scored rows change, so the number is easier, not better.
"""

from __future__ import annotations

import numpy as np

from ctnodule.evaluate.bootstrap import resample_counts, weighted_auc
from ctnodule.evaluate.compare import paired_difference

SIZE_BANDS = ((0.0, 6.0, "<6 mm"), (6.0, 10.0, "6-10 mm"), (10.0, 20.0, "10-20 mm"), (20.0, np.inf, ">20 mm"))
#: a band's AUC needs this many benign and this many malignant nodules (LIDC has ~1 malignant below 6 mm)
MIN_PER_CLASS = 5


def as_binary(y: np.ndarray, proba: np.ndarray, task: str) -> tuple[np.ndarray, np.ndarray]:
    """(malignant 0/1, (n, 2) probabilities): a 5-class output's P(4) + P(5) is its malignant probability."""
    if task == "binary":
        return np.asarray(y, int), np.asarray(proba, float)
    malignant = np.asarray(proba, float)[:, 3:].sum(axis=1)
    return (np.asarray(y, int) >= 3).astype(int), np.column_stack([1.0 - malignant, malignant])


def by_size(y: np.ndarray, proba: np.ndarray, size_proba: np.ndarray, sizes_mm: np.ndarray, task: str,
            groups: np.ndarray, n_boot: int = 1000, seed: int = 0) -> dict[str, dict]:
    """{band: {n, n_malignant, roc_auc: {a (model), b (size), diff, ci, ...}, [qwk: ...]}} (module doc).
    A band with fewer than MIN_PER_CLASS benign or malignant nodules gets no AUC (counts only)."""
    yb, pb = as_binary(y, proba, task)
    _, sb = as_binary(y, size_proba, task)
    out = {}
    for lo, hi, name in SIZE_BANDS:
        rows = np.flatnonzero((sizes_mm >= lo) & (sizes_mm < hi))
        band: dict = {"n": len(rows), "n_malignant": int(yb[rows].sum())}
        if MIN_PER_CLASS <= band["n_malignant"] <= len(rows) - MIN_PER_CLASS:
            band["roc_auc"] = paired_difference(yb[rows], pb[rows], sb[rows], "binary", groups[rows],
                                                n_boot, seed)["roc_auc"]
        if task == "multiclass" and len(rows) and len(np.unique(y[rows])) > 1:
            band["qwk"] = paired_difference(y[rows], proba[rows], size_proba[rows], task, groups[rows],
                                            n_boot, seed)["qwk"]
        out[name] = band
    return out


def auc_excluding_3(malignancy: np.ndarray, proba: np.ndarray, task: str, groups: np.ndarray,
                    n_boot: int = 1000, seed: int = 0) -> dict:
    """{n, roc_auc, ci} of the malignant probability over the nodules whose score (1..5) is not 3, and
    `roc_auc_with_3`: the same binary AUC over every nodule (3 = benign, our protocol) for comparison."""
    malignancy = np.asarray(malignancy, int)
    keep = malignancy != 3
    _, pb = as_binary(malignancy - 1, proba, "multiclass") if task == "multiclass" else (None, proba)
    score, positive = np.asarray(pb, float)[keep, 1], malignancy[keep] >= 4
    counts = np.vstack([np.ones(keep.sum()), resample_counts(int(keep.sum()), n_boot, seed, groups[keep])])
    auc = weighted_auc(score, positive, counts)
    boot = auc[1:][np.isfinite(auc[1:])]
    every = weighted_auc(np.asarray(pb, float)[:, 1], malignancy >= 4, np.ones((1, len(malignancy))))[0]
    return {"n": int(keep.sum()), "roc_auc": float(auc[0]), "roc_auc_with_3": float(every),
            "ci": [float(x) for x in np.percentile(boot, [2.5, 97.5])] if len(boot) else [np.nan, np.nan]}
