"""SMOTE on the training fold: on flattened images (`smote`, the seed's way) or on embeddings (`smote_embed`).

SMOTE interpolates between a minority sample and one of its k nearest same-class neighbours. On raw
pixels that blends two nodules into a ghosted double image; on backbone embeddings (what the
imbalanced-learn maintainers recommend for images) the interpolation stays in a space where it means
something, so `smote_embed` only accepts feature rows (N, D), i.e. the frozen-feature path.

Small classes: SMOTE needs k + 1 samples of a class. When a class to oversample has 2..k samples in the
fold, k is lowered to (its count - 1) with a warning; a class with a single sample cannot be interpolated
and raises a ConfigError that names it and suggests `oversample` or merging classes.
"""

from __future__ import annotations

import warnings

import numpy as np

from ctnodule.balance.base import BALANCERS, Balancer, check_xy
from ctnodule.errors import ConfigError


@BALANCERS.register("smote")
class Smote(Balancer):
    """imblearn SMOTE on flattened rows; images are reshaped back, generated rows marked synthetic."""

    def __init__(self, k_neighbors: int = 5, sampling_strategy: str | float | dict = "auto") -> None:
        self.k_neighbors = k_neighbors
        self.sampling_strategy = sampling_strategy

    def resample(self, X: np.ndarray, y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        from imblearn.over_sampling import SMOTE

        X, y = check_xy(X, y)
        self._check_input(X)
        k = self._effective_k(y)
        flat = X.reshape(len(X), -1)
        sampler = SMOTE(sampling_strategy=self.sampling_strategy, k_neighbors=k, random_state=seed)
        X2, y2 = sampler.fit_resample(flat, y)  # imblearn keeps the input rows first, new ones after
        self.k_neighbors_ = k
        self.class_counts_ = np.bincount(y2)
        synthetic = np.arange(len(y2)) >= len(y)
        self.sample_indices_ = np.where(synthetic, -1, np.arange(len(y2)))
        return X2.reshape((len(y2),) + X.shape[1:]).astype(X.dtype, copy=False), y2.astype(np.int64), synthetic

    def _check_input(self, X: np.ndarray) -> None:
        """Flattened images are allowed here (the seed's variant); `smote_embed` is stricter."""

    def _effective_k(self, y: np.ndarray) -> int:
        """k for this fold: the requested one, lowered when a class to oversample is too small."""
        k = int(self.k_neighbors)
        if k < 1:
            raise ConfigError(f"{self.name_()}: k_neighbors must be >= 1, got {self.k_neighbors!r}")
        labels, counts = np.unique(y, return_counts=True)
        if len(labels) < 2:
            raise ConfigError(f"{self.name_()}: the training fold has one class only ({int(labels[0])}); "
                              "nothing to balance — check the split")
        small = counts[counts < counts.max()]  # only classes that SMOTE will oversample matter
        if len(small) == 0:
            return k
        smallest = int(small.min())
        if smallest < 2:
            cls = int(labels[(counts == smallest)][0])
            raise ConfigError(
                f"{self.name_()}: class {cls} has 1 sample in this training fold; SMOTE needs at least 2 to "
                "interpolate. Use --imbalance oversample or weights, or merge rare classes (e.g. the binary task)")
        if smallest <= k:
            cls = int(labels[(counts == smallest)][0])
            warnings.warn(f"{self.name_()}: class {cls} has only {smallest} samples in this training fold; "
                          f"lowering k_neighbors from {k} to {smallest - 1}", stacklevel=3)
            k = smallest - 1
        return k

    def name_(self) -> str:
        return "smote_embed" if isinstance(self, SmoteEmbed) else "smote"


@BALANCERS.register("smote_embed")
class SmoteEmbed(Smote):
    """SMOTE on backbone embeddings (N, D): use with a frozen backbone / feature head."""

    def _check_input(self, X: np.ndarray) -> None:
        if X.ndim != 2:
            raise ConfigError(
                f"smote_embed: expects feature vectors (N, D) but got an array of shape {X.shape}; it "
                "interpolates backbone embeddings, so use it with a frozen backbone / feature head "
                "(e.g. --head mlp or svm with a frozen backbone), or use --imbalance smote for pixels")
