"""Class-imbalance toolkit: balancers by name for the training engine, the cGAN and its quality figures.

    from ctnodule.balance import resolve, available
    b = resolve("smote", k_neighbors=5)
    X2, y2, is_synthetic = b.resample(X_train, y_train, seed=0)   # training fold only
    criterion = b.loss(y_train, n_classes)

Every balancer resamples and/or chooses the loss; see `base.Balancer` for the contract.
"""

from __future__ import annotations

from typing import Any

from ctnodule.balance import generative, losses, sampling, smote, weights  # noqa: F401  (registers balancers)
from ctnodule.balance.base import BALANCERS, Balancer
from ctnodule.balance.weights import balanced_class_weights, class_weight_table


def resolve(name: str, **params: Any) -> Balancer:
    """Build the balancer registered as `name`; an unknown name suggests close matches."""
    return BALANCERS.create(name, **params)


def available() -> list[str]:
    """Names of all registered balancers."""
    return BALANCERS.available()


__all__ = ["Balancer", "available", "balanced_class_weights", "class_weight_table", "resolve"]
