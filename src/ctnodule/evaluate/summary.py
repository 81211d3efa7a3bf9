"""From out-of-fold predictions to the whole `metrics.json` of a run, in one call.

The training engine writes `oof_predictions.csv` (sample_id, patient_id, fold, y_true, proba_0..proba_{C-1});
`evaluate_oof` turns it into the dictionary `write_metrics` stores:

    {n, accuracy, ..., roc_auc, [qwk, within_one], per_class,      # pooled out-of-fold metrics
     ci: {metric: [lo, hi]},                                       # patient-cluster bootstrap, 95 %
     baselines: {majority: {...}, size: {...}, [radiomics: {...}]}, # same splits (needs the dataset frame)
     by_size: {band: {...}}, auc_excluding_3: {...},               # "sees more than size?" (evaluate.strata)
     readers: {...},                                               # when reader_ratings exist (evaluate.readers)
     folds: [{fold, n, accuracy, ...}, ...]}                       # per-fold metrics -> CV mean ± sd

Pooled out-of-fold metrics use every sample once, so they are the headline numbers; the per-fold list shows
how much they move from fold to fold (the benchmark table's ± sd).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ctnodule.data.splits import Split
from ctnodule.errors import DataError
from ctnodule.evaluate.bootstrap import bootstrap_ci
from ctnodule.evaluate.metrics import compute_metrics
from ctnodule.vocab import N_CLASSES


def oof_arrays(oof: pd.DataFrame, task: str) -> tuple[np.ndarray, np.ndarray]:
    """(y_true, proba) from an out-of-fold predictions frame; checks the proba_k columns are all there."""
    columns = [f"proba_{c}" for c in range(N_CLASSES[task])]
    missing = [c for c in ("y_true", *columns) if c not in oof.columns]
    if missing:
        raise DataError(f"out-of-fold predictions lack column(s) {missing} for the {task} task")
    if oof.empty:
        raise DataError("out-of-fold predictions are empty")
    return oof["y_true"].to_numpy(dtype=int), oof[columns].to_numpy(dtype=float)


def evaluate_oof(
    oof: pd.DataFrame, task: str, frame: pd.DataFrame | None = None, splits: list[Split] | None = None,
    root: str | Path | None = None, n_boot: int = 1000, seed: int = 0,
) -> dict:
    """The `metrics.json` dictionary of a run from its out-of-fold predictions.

    `frame` (the dataset's manifest rows the splits index into), `splits` and, when sizes come from masks,
    `root` (the dataset folder) add the majority and size baselines on the same splits; without them the
    "baselines" entry is empty. The bootstrap resamples patients when `oof` has a patient_id column.
    """
    from ctnodule.evaluate.baselines import evaluate_baselines

    y, proba = oof_arrays(oof, task)
    metrics = compute_metrics(y, proba, task)
    groups = oof["patient_id"].astype(str).to_numpy() if "patient_id" in oof.columns else None
    metrics["ci"] = {k: [lo, hi] for k, (lo, hi) in bootstrap_ci(y, proba, task, n_boot, seed, groups).items()}
    metrics["baselines"] = {}
    if frame is not None and splits is not None:
        metrics["baselines"] = {name: _scalars(m) for name, m in evaluate_baselines(frame, task, splits, root).items()}
        metrics.update(_size_and_readers(oof, proba, task, frame, splits, root, n_boot, seed))
    metrics["folds"] = []
    if "fold" in oof.columns:
        for fold, part in oof.groupby("fold", sort=True):
            with warnings.catch_warnings():  # a small fold lacking a class is expected; pooled metrics warn
                warnings.simplefilter("ignore", UserWarning)
                fold_metrics = _scalars(compute_metrics(*oof_arrays(part, task), task))
            metrics["folds"].append({"fold": int(fold), **fold_metrics})
    return metrics


def _size_and_readers(oof: pd.DataFrame, proba: np.ndarray, task: str, frame: pd.DataFrame, splits: list[Split],
                      root: str | Path | None, n_boot: int, seed: int) -> dict:
    """The by-size, score-3-excluded and reader-agreement blocks; {} when `oof` rows are not in `frame`."""
    from ctnodule.evaluate.baselines import nodule_size_mm, size_baseline
    from ctnodule.evaluate.readers import evaluate_readers
    from ctnodule.evaluate.strata import auc_excluding_3, by_size

    position = pd.Series(np.arange(len(frame)), index=frame["sample_id"].astype(str))
    idx = position.reindex(oof["sample_id"].astype(str)).to_numpy() if "sample_id" in oof.columns else None
    if idx is None or np.isnan(idx).any():
        return {}
    idx = idx.astype(int)
    rows = frame.iloc[idx]
    y = oof["y_true"].to_numpy(dtype=int)
    groups = oof["patient_id"].astype(str).to_numpy() if "patient_id" in oof.columns else rows["patient_id"].astype(str).to_numpy()
    sizes = nodule_size_mm(frame, root)[idx]
    size_proba = size_baseline(frame, task, splits, root)[idx]
    known = np.isfinite(sizes)
    out = {
        "by_size": by_size(y[known], proba[known], size_proba[known], sizes[known], task, groups[known], n_boot, seed),
        "auc_excluding_3": auc_excluding_3(rows["malignancy"].to_numpy(dtype=int), proba, task, groups, n_boot, seed),
    }
    readers = evaluate_readers(rows, proba, n_boot, seed)
    return {**out, "readers": readers} if readers else out


def _scalars(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k != "per_class"}


def score_run(run_dir: str | Path, data: str | Path | None = None, n_boot: int = 1000) -> dict:
    """Score a trained run from its folder: `metrics.json` from `oof_predictions.csv`, with the baselines on
    the run's own split files. `data` defaults to the dataset recorded in config.yaml."""
    from ctnodule.data.dataset import SliceDataset
    from ctnodule.data.splits import load_splits
    from ctnodule.runfolder import read_config, read_oof, write_metrics

    config = read_config(run_dir)
    dataset = SliceDataset(data if data is not None else config["data"]).view(config["view"])
    splits = load_splits(run_dir, dataset.frame)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        metrics = evaluate_oof(read_oof(run_dir), config["task"], dataset.frame, splits, dataset.root,
                               n_boot=n_boot, seed=config.get("seed", 0))
    if "train_seconds" in config:
        metrics["train_seconds"] = config["train_seconds"]
    write_metrics(run_dir, metrics)
    return metrics
