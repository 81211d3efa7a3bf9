"""Does a probability mean what it says? ECE, Brier score and log-loss, exact and bootstrap-weighted.

- **ECE** (expected calibration error) with **10 equal-mass (adaptive) bins**: samples sorted by confidence
  are cut into 10 bins of (as near as possible) equal count — sample i of n (0-based, in sorted order) goes
  to bin floor((i + 0.5) * 10 / n) — and ECE = sum over bins of |sum(confidence - outcome)| / n, i.e. the
  count-weighted mean gap between mean confidence and observed frequency. Equal-mass bins keep ~n/10
  samples in every bin, where fixed-width bins leave 1-4 samples in the sparse ones and their noise
  dominates the sum. Binary: confidence = P(malignant), outcome = malignant. Multiclass: top-label
  confidence = max_k p_k, outcome = the arg-max class is right.
- **Brier score**: mean over samples of sum_k (p_k - [y = k])^2. For two classes this is twice the usual
  binary Brier score (p - y)^2, so binary runs report the usual one: mean (P(malignant) - y)^2.
- **Log-loss**: mean of -ln p_y (p clipped to [1e-15, 1]).

ECE is biased upward by sampling noise (|mean gap| of a noisy bin is > 0 even when calibrated), and more so
in a bootstrap resample, whose duplicates add noise: its percentile CI sits above the point value and can
even exclude it when the point value is small (seen on the real VOIs: 0.011 [0.013, 0.047] with isotonic
calibration). Read the CI as the spread, and compare models by their point values on the same data.

The weighted versions take a (b, n) matrix of sample weights (bootstrap draw counts) and return (b,) values
equal to the exact functions on the explicitly resampled data (the w copies of a sample drawn w times
are split across bin edges exactly as the explicit copies would be).
"""

from __future__ import annotations

import numpy as np

N_BINS = 10
EPS = 1e-15
CALIBRATION_KEYS = ("ece", "brier", "log_loss")


def confidence_outcome(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What ECE bins: P(class 1) vs y == 1 for two classes; top-label confidence vs correctness for more."""
    if p.shape[1] == 2:
        return p[:, 1], (y == 1).astype(float)
    return p.max(axis=1), (p.argmax(axis=1) == y).astype(float)


def adaptive_bins(confidence: np.ndarray, n_bins: int = N_BINS) -> np.ndarray:
    """Equal-mass bin index (0..n_bins-1) of each sample; ties in confidence keep their input order."""
    order = np.argsort(confidence, kind="stable")
    which = np.empty(len(confidence), dtype=int)
    which[order] = np.floor((np.arange(len(confidence)) + 0.5) * n_bins / len(confidence)).astype(int)
    return which


def reliability(y: np.ndarray, p: np.ndarray, n_bins: int = N_BINS) -> dict[str, np.ndarray]:
    """Per adaptive bin: count, mean confidence, observed frequency, lower/upper confidence edge."""
    conf, hit = confidence_outcome(y, p)
    which = adaptive_bins(conf, n_bins)
    count = np.bincount(which, minlength=n_bins).astype(float)
    used = count > 0
    safe = np.where(used, count, 1.0)
    lo = np.array([conf[which == b].min() if used[b] else np.nan for b in range(n_bins)])
    hi = np.array([conf[which == b].max() if used[b] else np.nan for b in range(n_bins)])
    return {"count": count, "confidence": np.bincount(which, conf, n_bins) / safe,
            "observed": np.bincount(which, hit, n_bins) / safe, "lo": lo, "hi": hi, "used": used}


def calibration_metrics(y: np.ndarray, p: np.ndarray, n_bins: int = N_BINS) -> dict[str, float]:
    """{ece, brier, log_loss} of probabilities `p` (n, k) against class indices `y`; see the module doc."""
    weighted = weighted_calibration(y, p, np.ones((1, len(y))), n_bins)
    return {key: float(values[0]) for key, values in weighted.items()}


def weighted_calibration(y: np.ndarray, p: np.ndarray, counts: np.ndarray,
                         n_bins: int = N_BINS) -> dict[str, np.ndarray]:
    """{ece, brier, log_loss} -> (b,) for each row of sample weights `counts` (b, n)."""
    n = len(y)
    onehot = np.eye(p.shape[1])[y]
    if p.shape[1] == 2:
        brier = (p[:, 1] - onehot[:, 1]) ** 2
    else:
        brier = ((p - onehot) ** 2).sum(axis=1)
    loss = -np.log(np.clip(p[np.arange(n), y], EPS, 1.0))
    total = counts.sum(axis=1)
    conf, hit = confidence_outcome(y, p)
    order = np.argsort(conf, kind="stable")
    w = counts[:, order]
    start = np.cumsum(w, axis=1) - w  # first position of each sample's copies in the resampled sorted list
    # bin b holds the positions q with floor((q + 0.5) * n_bins / total) == b, i.e. edges[b] <= q < edges[b + 1]
    edges = np.ceil(np.arange(n_bins + 1)[None, :] * total[:, None] / n_bins - 0.5)
    copies = np.clip(np.minimum((start + w)[:, :, None], edges[:, None, 1:])
                     - np.maximum(start[:, :, None], edges[:, None, :-1]), 0.0, None)  # (b, n, bins)
    gap = np.einsum("bnk,n->bk", copies, (conf - hit)[order])
    with np.errstate(divide="ignore", invalid="ignore"):
        return {"ece": np.abs(gap).sum(axis=1) / total, "brier": counts @ brier / total,
                "log_loss": counts @ loss / total}
