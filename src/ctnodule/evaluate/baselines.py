"""Baselines every model is judged against, evaluated on the model's own splits.

- `majority`: predicts the training fold's class frequencies for every sample (accuracy of always saying
  the commonest class, ROC-AUC 0.5). A model below it has learned nothing.
- `size`: logistic regression on log nodule size alone. Size is the strongest single malignancy signal in
  LIDC (radiologists rate big nodules as suspicious), so a CNN that does not beat this has learned size
  and little else. Size is the mask-measured equivalent diameter (`mask_diameter_mm`) when the dataset has
  it, else the source's `diameter_mm`, else computed from the mask files (area x pixel spacing).

- `radiomics`: the radiomics researcher's standard — pyradiomics' 107 IBSI features (`data.radiomics`)
  + a logistic regression (median-imputed, standardised, L2 with C = 0.1). The 3D VOI features when the
  manifest has `radiomics_*` columns (`import voi --radiomics`), else the 2D features of each row's slice
  and mask (needs `root`); left out when neither exists.

All give out-of-fold probabilities: each sample is predicted by the model fitted on the folds that do not
hold it (for a holdout, only the held-out samples are predicted; the rest stay NaN). `evaluate_baselines`
scores them with `compute_metrics` on exactly the rows the model is scored on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ctnodule.data.splits import Split
from ctnodule.errors import DataError
from ctnodule.evaluate.metrics import compute_metrics
from ctnodule.vocab import N_CLASSES, task_labels

#: smallest size used in log(size): a zero-area mask (a reader's point mark) must not become -inf
MIN_SIZE_MM = 0.5


def majority_baseline(frame: pd.DataFrame, task: str, splits: list[Split]) -> np.ndarray:
    """Out-of-fold (n, n_classes) probabilities: each validation fold gets its training fold's class prior."""
    y = task_labels(frame, task)
    k = N_CLASSES[task]
    oof = np.full((len(frame), k), np.nan)
    for train, val in splits:
        prior = np.bincount(y[train], minlength=k).astype(float)
        oof[val] = prior / prior.sum()
    return oof


def size_baseline(
    frame: pd.DataFrame, task: str, splits: list[Split], root: str | Path | None = None
) -> np.ndarray:
    """Out-of-fold (n, n_classes) probabilities of a logistic regression on log nodule size.

    `root` is the dataset folder, needed only when the size must be measured from `mask_path` files.
    A missing size (NaN) is filled with the training fold's median.
    """
    from sklearn.linear_model import LogisticRegression

    y = task_labels(frame, task)
    k = N_CLASSES[task]
    x = np.log(np.maximum(nodule_size_mm(frame, root), MIN_SIZE_MM))
    oof = np.full((len(frame), k), np.nan)
    for train, val in splits:
        fill = np.nanmedian(x[train])
        x_train = np.where(np.isnan(x[train]), fill, x[train])[:, None]
        x_val = np.where(np.isnan(x[val]), fill, x[val])[:, None]
        mean, sd = x_train.mean(), x_train.std() or 1.0
        model = LogisticRegression(max_iter=1000).fit((x_train - mean) / sd, y[train])
        oof[val] = 0.0
        oof[np.ix_(val, model.classes_)] = model.predict_proba((x_val - mean) / sd)
    return oof


def evaluate_baselines(
    frame: pd.DataFrame, task: str, splits: list[Split], root: str | Path | None = None
) -> dict[str, dict]:
    """{"majority": metrics, "size": metrics[, "radiomics": metrics]} of the out-of-fold baseline
    predictions on `splits`.

    Scored on every sample that is in a validation set (all of them for k-fold CV), like the model's
    out-of-fold predictions, so the numbers sit side by side in the model card.
    """
    y = task_labels(frame, task)
    scored = np.zeros(len(frame), bool)
    for _, val in splits:
        scored[np.asarray(val)] = True
    if not scored.any():
        raise DataError("the splits have no validation samples: nothing to evaluate the baselines on")
    out = {}
    baselines = [("majority", majority_baseline(frame, task, splits)), ("size", size_baseline(frame, task, splits, root))]
    table = radiomics_table(frame, root)
    if table is not None:
        baselines.append(("radiomics", radiomics_baseline(frame, task, splits, table)))
    for name, oof in baselines:
        out[name] = compute_metrics(y[scored], oof[scored], task)
    return out


#: L2 strength of the radiomics logistic regression (107 strongly correlated features, ~600 training rows)
RADIOMICS_C = 0.1


def radiomics_table(frame: pd.DataFrame, root: str | Path | None = None) -> np.ndarray | None:
    """(n, d) radiomics features: the manifest's `radiomics_*` columns (3D), else 2D from each row's slice
    and mask files under `root`; None when there are neither (rows without a mask are NaN)."""
    from ctnodule.data.radiomics import PREFIX, features_2d

    columns = sorted(c for c in frame.columns if c.startswith(PREFIX))
    if columns:
        return frame[columns].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    if root is None or "mask_path" not in frame.columns:
        return None
    from ctnodule.data.io import read_nrrd

    rows = []
    for image_rel, mask_rel in zip(frame["path"], frame["mask_path"]):
        if not isinstance(mask_rel, str) or not mask_rel:
            rows.append({})
            continue
        hu, spacing = read_nrrd(Path(root) / image_rel)
        mask, _ = read_nrrd(Path(root) / mask_rel)
        rows.append(features_2d(hu, mask, spacing))
    table = pd.DataFrame(rows)
    return None if table.empty else table[sorted(table.columns)].to_numpy(dtype=float)


def radiomics_baseline(frame: pd.DataFrame, task: str, splits: list[Split], table: np.ndarray) -> np.ndarray:
    """Out-of-fold (n, n_classes) probabilities of the radiomics logistic regression (module doc)."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y = task_labels(frame, task)
    oof = np.full((len(frame), N_CLASSES[task]), np.nan)
    x = np.where(np.isfinite(table), table, np.nan)
    for train, val in splits:
        model = make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler(),
                              LogisticRegression(C=RADIOMICS_C, max_iter=5000))
        model.fit(x[train], y[train])
        oof[val] = 0.0
        oof[np.ix_(val, model.classes_)] = model.predict_proba(x[val])
    return oof


def nodule_size_mm(frame: pd.DataFrame, root: str | Path | None = None) -> np.ndarray:
    """Nodule size (mm) per row: `mask_diameter_mm`, else `diameter_mm`, else equivalent diameter of the mask.

    The equivalent diameter is that of the circle with the mask's area (pixels x row x column spacing).
    Raises `DataError` when the frame has none of these.
    """
    for column in ("mask_diameter_mm", "diameter_mm"):
        if column in frame.columns:
            values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
            if np.isfinite(values).any():
                return values
    if "mask_path" in frame.columns and root is not None:
        return _mask_diameters(frame, Path(root))
    raise DataError(
        "no nodule size for the size baseline: the dataset has no mask_diameter_mm or diameter_mm column"
        + ("" if "mask_path" in frame.columns else " and no mask_path column")
        + ("; pass the dataset folder (root) to measure the masks" if root is None else "")
    )


def _mask_diameters(frame: pd.DataFrame, root: Path) -> np.ndarray:
    from ctnodule.data.io import read_nrrd

    sizes = np.full(len(frame), np.nan)
    for i, rel in enumerate(frame["mask_path"].tolist()):
        if not isinstance(rel, str) or not rel:
            continue
        mask, spacing = read_nrrd(root / rel)
        area = float((mask > 0).sum()) * float(spacing[-2]) * float(spacing[-1])
        sizes[i] = 2.0 * np.sqrt(area / np.pi)
    if not np.isfinite(sizes).any():
        raise DataError("no row has a mask_path to measure the nodule size from", root)
    return sizes
