"""The balancer contract and its registry.

A balancer answers two questions for the training engine, on the TRAINING fold only:
`resample(X, y, seed)` — which samples to train on (identity, duplicated, dropped or generated), and
`loss(y_train, n_classes)` — which loss to train with (plain, class-weighted, focal, logit-adjusted).
Parameters live in `__init__` (scikit-learn style); anything learned from a fold is set during the call
and ends in `_` (`class_counts_`, `sample_indices_`), so one object can be reused fold after fold.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ctnodule.errors import ConfigError
from ctnodule.registry import Registry

BALANCERS: Registry[Balancer] = Registry("balancer", tuple(f"ctnodule.balance.{m}" for m in (
    "generative", "losses", "sampling", "smote", "weights")))


class Balancer:
    """Identity resampling and plain cross-entropy: the `none` balancer and the base of all others."""

    name = "none"

    def get_params(self) -> dict[str, Any]:
        """Constructor arguments by name (what a run folder records to rebuild this balancer)."""
        import inspect

        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {n: getattr(self, n) for n in names}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # --- sampling ---------------------------------------------------------------------------------
    def resample(self, X: np.ndarray, y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The training set to use: `(X2, y2, is_synthetic)`.

        `is_synthetic[i]` is True for a generated row (SMOTE interpolation, GAN sample) and False for a real
        one (including a duplicated real row). `sample_indices_` maps each output row to its input row (-1
        for generated ones), so callers can carry per-sample side data (ids, measured size) along.
        """
        X, y = check_xy(X, y)
        self.sample_indices_ = np.arange(len(y))
        self.class_counts_ = np.bincount(y)
        return X, y, np.zeros(len(y), dtype=bool)

    # --- loss -------------------------------------------------------------------------------------
    def class_weights(self, y: np.ndarray, n_classes: int) -> np.ndarray | None:
        """Per-class loss weights, or None when the loss is unweighted."""
        return None

    def loss(self, y_train: np.ndarray, n_classes: int) -> torch.nn.Module:
        """The training loss for a fold with labels `y_train` (class indices 0..n_classes-1)."""
        y_train = check_labels(y_train, n_classes)
        w = self.class_weights(y_train, n_classes)
        weight = None if w is None else torch.as_tensor(w, dtype=torch.float32)
        return torch.nn.CrossEntropyLoss(weight=weight)


def check_xy(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate a training fold: matching lengths, non-empty, integer labels >= 0."""
    X = np.asarray(X)
    y = np.asarray(y)
    if y.ndim != 1:
        raise ConfigError(f"balancer: labels must be 1-D class indices, got shape {y.shape}")
    if len(X) != len(y):
        raise ConfigError(f"balancer: X has {len(X)} rows but y has {len(y)} labels; pass matching arrays")
    if len(y) == 0:
        raise ConfigError("balancer: the training fold is empty; check the split and the dataset filter")
    if not np.issubdtype(y.dtype, np.integer) or (y < 0).any():
        raise ConfigError(f"balancer: labels must be non-negative class indices, got dtype {y.dtype}")
    return X, y.astype(np.int64)


def check_labels(y: np.ndarray, n_classes: int) -> np.ndarray:
    """Labels as int64 in 0..n_classes-1, or a ConfigError naming the offending value."""
    y = np.asarray(y)
    if y.ndim != 1 or len(y) == 0:
        raise ConfigError(f"balancer: y_train must be a non-empty 1-D array, got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ConfigError(f"balancer: y_train must hold class indices, got dtype {y.dtype}")
    if y.min() < 0 or y.max() >= n_classes:
        raise ConfigError(f"balancer: label {int(y.max()) if y.max() >= n_classes else int(y.min())} "
                          f"is outside 0..{n_classes - 1}; pass n_classes={n_classes} correctly")
    return y.astype(np.int64)


@BALANCERS.register("none")
class NoBalancing(Balancer):
    """Train on the fold as it is, with plain cross-entropy (the reference every balancer is compared to)."""

    def __init__(self) -> None:
        pass
