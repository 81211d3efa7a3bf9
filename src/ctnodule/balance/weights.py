"""Class weights in the loss: w_c = n_samples / (n_classes * n_c), scikit-learn's 'balanced' formula.

Every class then contributes the same total weight to the loss, whatever its count. A class absent from
the training fold gets weight 1.0 (neutral): it is never a target during training, so its weight cannot
change the training loss, while a validation loss computed with the same module still counts its samples
(a 0 would silently drop them from early stopping). A warning names the missing class.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ctnodule.balance.base import BALANCERS, Balancer, check_labels


def balanced_class_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    """w_c = n / (n_classes * n_c) for present classes, 1.0 for absent ones (see the module docstring)."""
    y = check_labels(y, n_classes)
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    weights = np.ones(n_classes, dtype=np.float64)
    present = counts > 0
    weights[present] = len(y) / (n_classes * counts[present])
    if not present.all():
        missing = np.flatnonzero(~present).tolist()
        warnings.warn(f"class(es) {missing} absent from the training labels; their loss weight is 1.0",
                      stacklevel=2)
    return weights


def class_weight_table(y_multiclass: np.ndarray, y_binary: np.ndarray) -> pd.DataFrame:
    """The seed's table 2: count, share and balanced weight of every class, for both tasks.

    `y_multiclass` holds malignancy classes 0..4 (scores 1..5), `y_binary` 0 = benign, 1 = malignant.
    """
    from ctnodule.vocab import CLASS_NAMES

    rows = []
    for task, y, n_classes in (("multiclass", y_multiclass, 5), ("binary", y_binary, 2)):
        y = check_labels(np.asarray(y), n_classes)
        counts = np.bincount(y, minlength=n_classes)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            w = balanced_class_weights(y, n_classes)
        for c in range(n_classes):
            rows.append({"task": task, "class": CLASS_NAMES[task][c], "count": int(counts[c]),
                         "share": counts[c] / len(y), "weight": float(w[c])})
    return pd.DataFrame(rows)


@BALANCERS.register("weights")
class ClassWeights(Balancer):
    """Keep the fold as it is; weight each class's loss by n / (n_classes * n_c)."""

    def __init__(self) -> None:
        pass

    def class_weights(self, y: np.ndarray, n_classes: int) -> np.ndarray | None:
        self.class_weights_ = balanced_class_weights(y, n_classes)
        return self.class_weights_
