"""Calibrated probabilities for the scikit-learn heads, fitted inside the training part only.

`fit_calibrated(head, X, y, n_extra, groups, method)` fits `head`'s pipeline on all training rows and a
calibrator (Platt's sigmoid or isotonic regression) on the head's decision values of inner, patient-grouped,
class-stratified folds of those rows (`StratifiedGroupKFold`, `inner_folds` folds): every decision value the
calibrator sees comes from a model that did not train on that patient. This is scikit-learn's
`CalibratedClassifierCV(ensemble=False)` with an explicit grouped `cv`, so one linear model remains (its
attributions stay exact) followed by one monotone map per class; with more than two classes the per-class
calibrated scores are renormalised (one-vs-rest, scikit-learn's rule).

Called by training per CV fold on that fold's training rows, so the held-out fold never informs it.
"""

from __future__ import annotations

import numpy as np

from ctnodule.errors import ConfigError, DataError
from ctnodule.models.heads import SklearnHead

METHODS = {"platt": "sigmoid", "isotonic": "isotonic"}


def fit_calibrated(head: SklearnHead, X: np.ndarray, y: np.ndarray, n_extra: int, groups: np.ndarray,
                   method: str, sample_weight: np.ndarray | None = None, inner_folds: int = 3,
                   seed: int = 0) -> SklearnHead:
    """Fit `head` on (X, y) with probabilities calibrated by `method` ("platt" or "isotonic") on
    `inner_folds` patient-grouped inner folds (`groups`: one patient id per row). Returns `head`."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.model_selection import StratifiedGroupKFold

    if method not in METHODS:
        raise ConfigError(f"unknown calibration {method!r}; expected none, {', '.join(METHODS)}")
    groups = np.asarray(groups).astype(str)
    if len(groups) != len(X):
        raise DataError(f"calibration needs one patient id per training row: got {len(groups)} for {len(X)} rows")
    if len(np.unique(groups)) < inner_folds:
        raise DataError(f"calibration needs >= {inner_folds} patients in a training fold for its inner folds, "
                        f"got {len(np.unique(groups))}; add patients or use calibration: none")
    splitter = StratifiedGroupKFold(n_splits=inner_folds, shuffle=True, random_state=seed)
    cv = list(splitter.split(np.zeros(len(y)), y, groups))
    model = head.pipeline(X.shape[1] - n_extra, len(X))
    fit_params = {} if sample_weight is None else {f"{model.steps[-1][0]}__sample_weight": sample_weight}
    calibrated = CalibratedClassifierCV(model, method=METHODS[method], cv=cv, ensemble=False)
    head.model_ = calibrated.fit(X, y, **fit_params)
    head.classes_ = head.model_.classes_
    return head


def split_calibrated(model):
    """(the fitted pipeline that scores, its calibrators or None) of a head's `model_`."""
    from sklearn.calibration import CalibratedClassifierCV

    if isinstance(model, CalibratedClassifierCV):
        inner = model.calibrated_classifiers_[0]
        return inner.estimator, inner.calibrators
    return model, None
