"""The numbers behind `ctnodule explore` (the seed's section 2.2), as plain DataFrames.

Kept apart from the figures so tests, notebooks and other stages can use the tables directly.
"""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd

from ctnodule.data.io import read_nrrd
from ctnodule.vocab import CLASS_NAMES

PERCENTILES = tuple(range(99, 89, -1))


def laplacian_variance(x: np.ndarray) -> float:
    """Variance of the 3x3 Laplacian of a 2D slice in HU (float32 filter, float64 variance).

    The seed's sharpness/noise measure; computed on HU so values compare across datasets (the
    preprocessing noise filter uses the same formula on whatever its pipeline has made of the slice).
    """
    return float(cv2.Laplacian(x.astype(np.float32, copy=False), cv2.CV_32F).var(dtype=np.float64))


def slice_stats(root, frame: pd.DataFrame, progress: bool = False) -> pd.DataFrame:
    """One row per sample: ids, view, labels, slice shape and Laplacian variance (reads every slice once)."""
    from tqdm import tqdm

    rows = []
    for r in tqdm(frame.itertuples(index=False), total=len(frame), desc="explore", unit="slice",
                  disable=not progress):
        array, _ = read_nrrd(root / r.path)
        rows.append({"rows": int(array.shape[0]), "cols": int(array.shape[1]),
                     "laplacian_var": laplacian_variance(array)})
    keep = [c for c in ("sample_id", "patient_id", "view", "malignancy", "label_binary", "mask_diameter_mm",
                        "spacing_row") if c in frame.columns]
    return pd.concat([frame[keep].reset_index(drop=True), pd.DataFrame(rows)], axis=1)


def class_distribution(frame: pd.DataFrame) -> pd.DataFrame:
    """Samples per view and class for both tasks (absent classes shown as 0), with shares."""
    out = []
    for view, part in [("all", frame), *sorted(frame.groupby("view"))]:
        for task, col, names, offset in (("multiclass", "malignancy", CLASS_NAMES["multiclass"], 1),
                                         ("binary", "label_binary", CLASS_NAMES["binary"], 0)):
            counts = part[col].value_counts()
            for k, name in enumerate(names):
                n = int(counts.get(k + offset, 0))
                out.append({"view": view, "task": task, "class": name, "n": n, "share": n / max(1, len(part))})
    return pd.DataFrame(out)


def shape_distribution(stats: pd.DataFrame, min_count: int = 5) -> pd.DataFrame:
    """Slice shapes seen more than `min_count` times per view, most common first."""
    shapes = stats.assign(shape=stats["rows"].astype(str) + "x" + stats["cols"].astype(str))
    counts = shapes.groupby(["view", "shape"]).size().rename("n").reset_index()
    return counts[counts["n"] > min_count].sort_values(["view", "n"], ascending=[True, False]).reset_index(drop=True)


def percentile_table(stats: pd.DataFrame, percentiles: tuple[int, ...] = PERCENTILES) -> pd.DataFrame:
    """Per view: the Laplacian-variance value at each percentile and how many slices lie above it
    (what a noise filter at that percentile would drop)."""
    out = []
    for view, part in sorted(stats.groupby("view")):
        values = part["laplacian_var"].to_numpy()
        for p in percentiles:
            threshold = float(np.percentile(values, p))
            out.append({"view": view, "percentile": p, "laplacian_var": threshold,
                        "slices_above": int((values > threshold).sum()), "of": len(values)})
    return pd.DataFrame(out)


def class_weights_table(frame: pd.DataFrame) -> pd.DataFrame:
    """sklearn's balanced weights w_i = n_samples / (n_classes * n_i) per view and task, by
    `compute_class_weight`; a class absent from a view gets no weight (shown as NaN)."""
    from sklearn.utils.class_weight import compute_class_weight

    out = []
    for view, part in [("all", frame), *sorted(frame.groupby("view"))]:
        for task, col, names, offset in (("multiclass", "malignancy", CLASS_NAMES["multiclass"], 1),
                                         ("binary", "label_binary", CLASS_NAMES["binary"], 0)):
            y = part[col].to_numpy(dtype=int)
            present = np.unique(y)
            weights = dict(zip(present, compute_class_weight("balanced", classes=present, y=y)))
            for k, name in enumerate(names):
                c = k + offset
                out.append({"view": view, "task": task, "class": name, "n": int((y == c).sum()),
                            "weight": float(weights[c]) if c in weights else float("nan")})
    return pd.DataFrame(out)
