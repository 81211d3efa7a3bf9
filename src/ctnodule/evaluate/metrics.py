"""The metrics of a classifier, one function, one dictionary (what `metrics.json` holds).

`compute_metrics(y_true, proba, task)` returns exactly

    n, accuracy, balanced_accuracy, precision_macro, recall_macro, f1_macro, roc_auc,
    ece (10 equal-mass bins), brier, log_loss (see `ctnodule.evaluate.calibration`)
    + for "multiclass": qwk (quadratic weighted kappa), within_one (|pred - true| <= 1)
    + per_class: {class name: {precision, recall, f1, support, roc_auc}}

`y_true` are class indices (multiclass: 0..4 = malignancy 1..5; binary: 0 benign, 1 malignant); `proba` is
(n, n_classes) (binary also accepts the (n,) malignant probability). Predictions are the arg-max class.

The 5-class task is ordinal, so QWK and within-one are the numbers that matter clinically (calling a 5 a 4
is not the error calling it a 1 is); accuracy alone hides that. Macro precision/recall/F1 average over the
classes present in y_true or predicted (scikit-learn's rule). ROC-AUC is malignant-vs-benign for the binary
task and the macro mean of one-vs-rest AUCs for 5 classes; a class absent from `y_true` (small folds)
has no AUC, so the mean is over the present classes and a `UserWarning` says which were left out.
Undefined values are NaN, never an exception; `ctnodule.runfolder.write_metrics` stores them as null.
"""

from __future__ import annotations

import warnings

import numpy as np

from ctnodule.errors import DataError
from ctnodule.evaluate.calibration import CALIBRATION_KEYS, calibration_metrics
from ctnodule.vocab import class_names

SCALAR_KEYS = ("n", "accuracy", "balanced_accuracy", "precision_macro", "recall_macro", "f1_macro", "roc_auc",
               *CALIBRATION_KEYS)
ORDINAL_KEYS = ("qwk", "within_one")


def metric_keys(task: str) -> tuple[str, ...]:
    """The scalar keys `compute_metrics` returns for `task` (per_class aside)."""
    return SCALAR_KEYS + (ORDINAL_KEYS if task == "multiclass" else ())


def check_inputs(y_true: np.ndarray, proba: np.ndarray, task: str) -> tuple[np.ndarray, np.ndarray]:
    """Validated int labels and a 2D float probability matrix with one column per class of `task`."""
    names = class_names(task)
    y = np.asarray(y_true)
    p = np.asarray(proba, dtype=float)
    if task == "binary" and p.ndim == 1:
        p = np.column_stack([1.0 - p, p])
    if y.ndim != 1 or len(y) == 0:
        raise DataError(f"y_true must be a non-empty 1D array of class indices, got shape {y.shape}")
    if p.ndim != 2 or p.shape != (len(y), len(names)):
        raise DataError(f"proba has shape {p.shape}; expected ({len(y)}, {len(names)}) for the {task} task")
    if not np.isfinite(p).all():
        raise DataError("proba contains NaN or infinite values")
    if not np.all(np.equal(np.mod(y, 1), 0)) or y.min() < 0 or y.max() >= len(names):
        raise DataError(f"y_true must hold class indices 0..{len(names) - 1}; got values {np.unique(y)[:10]}")
    return y.astype(int), p


def compute_metrics(y_true: np.ndarray, proba: np.ndarray, task: str) -> dict:
    """All metrics of `proba` against `y_true` for `task` ("binary" or "multiclass"); see the module doc."""
    from sklearn.metrics import precision_recall_fscore_support

    y, p = check_inputs(y_true, proba, task)
    n_classes = p.shape[1]
    pred = p.argmax(axis=1)
    present = np.union1d(y, pred)
    prec, rec, f1, _ = precision_recall_fscore_support(y, pred, labels=present, zero_division=0)
    recall_true = [rec[np.searchsorted(present, c)] for c in np.unique(y)]
    out: dict = {
        "n": len(y),
        "accuracy": float(np.mean(pred == y)),
        "balanced_accuracy": float(np.mean(recall_true)),
        "precision_macro": float(np.mean(prec)),
        "recall_macro": float(np.mean(rec)),
        "f1_macro": float(np.mean(f1)),
        "roc_auc": _roc_auc(y, p, task),
        **calibration_metrics(y, p),
    }
    if task == "multiclass":
        out["qwk"] = quadratic_weighted_kappa(y, pred, n_classes)
        out["within_one"] = float(np.mean(np.abs(pred - y) <= 1))
    out["per_class"] = _per_class(y, p, pred, task)
    return out


def quadratic_weighted_kappa(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """Cohen's kappa with quadratic weights over the fixed classes 0..n_classes-1 (NaN when undefined)."""
    conf = np.zeros((n_classes, n_classes))
    np.add.at(conf, (np.asarray(y_true, int), np.asarray(y_pred, int)), 1.0)
    return float(kappa_from_confusion(conf[None])[0])


def kappa_from_confusion(conf: np.ndarray) -> np.ndarray:
    """Quadratic weighted kappa of a stack of (k, k) confusion matrices (shape (b, k, k)); NaN if undefined.

    Shared with the bootstrap, which builds one weighted confusion matrix per resample.
    """
    k = conf.shape[-1]
    idx = np.arange(k)
    weights = (idx[:, None] - idx[None, :]) ** 2 / (k - 1) ** 2
    total = conf.sum(axis=(1, 2))
    expected = conf.sum(axis=2)[:, :, None] * conf.sum(axis=1)[:, None, :] / np.where(total > 0, total, 1)[:, None, None]
    num = (weights * conf).sum(axis=(1, 2))
    den = (weights * expected).sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, 1.0 - num / np.where(den > 0, den, 1), np.nan)


def _roc_auc(y: np.ndarray, p: np.ndarray, task: str) -> float:
    from sklearn.metrics import roc_auc_score

    if task == "binary":
        if len(np.unique(y)) < 2:
            warnings.warn("roc_auc is undefined: y_true holds one class only", UserWarning, stacklevel=3)
            return float("nan")
        return float(roc_auc_score(y, p[:, 1]))
    aucs = _ovr_aucs(y, p)
    defined = [a for a in aucs if np.isfinite(a)]
    absent = [class_names(task)[c] for c, a in enumerate(aucs) if not np.isfinite(a)]
    if not defined:
        warnings.warn("roc_auc is undefined: y_true holds one class only", UserWarning, stacklevel=3)
        return float("nan")
    if absent:
        warnings.warn(
            f"roc_auc: class(es) {absent} absent from y_true; macro one-vs-rest AUC is over the "
            f"{len(defined)} present classes", UserWarning, stacklevel=3,
        )
    return float(np.mean(defined))


def _ovr_aucs(y: np.ndarray, p: np.ndarray) -> list[float]:
    from sklearn.metrics import roc_auc_score

    aucs = []
    for c in range(p.shape[1]):
        hit = y == c
        aucs.append(float(roc_auc_score(hit, p[:, c])) if 0 < hit.sum() < len(y) else float("nan"))
    return aucs


def _per_class(y: np.ndarray, p: np.ndarray, pred: np.ndarray, task: str) -> dict:
    from sklearn.metrics import precision_recall_fscore_support

    labels = np.arange(p.shape[1])
    prec, rec, f1, support = precision_recall_fscore_support(y, pred, labels=labels, zero_division=np.nan)
    aucs = _ovr_aucs(y, p) if task == "multiclass" else [float("nan"), float("nan")]
    if task == "binary" and len(np.unique(y)) == 2:
        from sklearn.metrics import roc_auc_score

        auc = float(roc_auc_score(y, p[:, 1]))
        aucs = [auc, auc]
    return {
        name: {"precision": float(prec[c]), "recall": float(rec[c]), "f1": float(f1[c]),
               "support": int(support[c]), "roc_auc": float(aucs[c])}
        for c, name in enumerate(class_names(task))
    }
