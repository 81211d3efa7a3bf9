"""Class-imbalance toolkit: balancers by name for the training engine, the cGAN and its quality figures.

    from ctnodule.balance import resolve, available
    b = resolve("smote", k_neighbors=5)
    X2, y2, is_synthetic = b.resample(X_train, y_train, seed=0)   # training fold only
    criterion = b.loss(y_train, n_classes)

Every balancer resamples and/or chooses the loss; see `base.Balancer` for the contract.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ctnodule.balance.base import Balancer

_WHERE = {"Balancer": "base", "balanced_class_weights": "weights", "class_weight_table": "weights"}


def resolve(name: str, **params: Any) -> Balancer:
    """Build the balancer registered as `name`; an unknown name suggests close matches."""
    from ctnodule.balance.base import BALANCERS

    return BALANCERS.create(name, **params)


def available() -> list[str]:
    """Names of all registered balancers."""
    from ctnodule.balance.base import BALANCERS

    return BALANCERS.available()


def __getattr__(name: str):
    """Names are imported on first use, so `ctnodule --help` does not load torch."""
    if name in _WHERE:
        return getattr(importlib.import_module(f"ctnodule.balance.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'ctnodule.balance' has no attribute {name!r}")


__all__ = ["Balancer", "available", "balanced_class_weights", "class_weight_table", "resolve"]
