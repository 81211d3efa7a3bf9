"""Random over- and under-sampling of the training fold (imbalanced-learn), for images or feature rows.

imbalanced-learn works on 2-D arrays, so images (N, C, H, W) are flattened and reshaped back. Duplicated
rows are real samples (`is_synthetic` False); `sample_indices_` says which input row each output row is.
"""

from __future__ import annotations

import numpy as np

from ctnodule.balance.base import BALANCERS, Balancer, check_xy


def _flat(X: np.ndarray) -> np.ndarray:
    return X.reshape(len(X), -1)


class _ImblearnSampler(Balancer):
    """Shared plumbing: run an imblearn sampler that exposes `sample_indices_` on the flattened fold."""

    def _sampler(self, seed: int):  # pragma: no cover - abstract
        raise NotImplementedError

    def resample(self, X: np.ndarray, y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        X, y = check_xy(X, y)
        sampler = self._sampler(seed)
        # resample row positions, not pixels: cheaper, and the images come back bit-identical
        idx, y2 = sampler.fit_resample(np.arange(len(y)).reshape(-1, 1), y)
        self.sample_indices_ = idx[:, 0].astype(np.int64)
        self.class_counts_ = np.bincount(y2)
        return X[self.sample_indices_], y2.astype(np.int64), np.zeros(len(y2), dtype=bool)


@BALANCERS.register("oversample")
class RandomOversample(_ImblearnSampler):
    """Duplicate random minority rows until every class has `sampling_strategy`'s count (default: the majority's)."""

    def __init__(self, sampling_strategy: str | float | dict = "auto") -> None:
        self.sampling_strategy = sampling_strategy

    def _sampler(self, seed: int):
        from imblearn.over_sampling import RandomOverSampler

        return RandomOverSampler(sampling_strategy=self.sampling_strategy, random_state=seed)


@BALANCERS.register("undersample")
class RandomUndersample(_ImblearnSampler):
    """Drop random majority rows down to the minority count (default): fewer, balanced training rows."""

    def __init__(self, sampling_strategy: str | float | dict = "auto") -> None:
        self.sampling_strategy = sampling_strategy

    def _sampler(self, seed: int):
        from imblearn.under_sampling import RandomUnderSampler

        return RandomUnderSampler(sampling_strategy=self.sampling_strategy, random_state=seed)
