"""Patient-grouped, label-stratified splits: k-fold CV and the seed's 80/20 holdout.

LIDC patients often have several nodules, and nodules of one patient look alike (same scanner, same
reconstruction kernel, same readers). A split by sample would put a patient's nodules on both sides and
inflate every number, so every split here is by `patient_id` (scikit-learn's `StratifiedGroupKFold`),
stratified by the task's label so each fold sees every class. Splits are returned as positional index
arrays into the frame (composites, `ctnodule import composite`, group by their nodule's patient:
`group_ids`), saved as `splits/fold-{k}.csv` in the run folder (sample_id, patient_id, split) so
a run can be re-evaluated on exactly the same partition, and checked for leakage on load.

API (used by training, evaluation and the studies):

- `patient_kfold(frame, task, folds=5, seed=0)` -> [(train_idx, val_idx), ...]
- `patient_holdout(frame, task, test_size=0.2, seed=0)` -> (train_idx, val_idx)
- `save_splits(run_dir, frame, splits)` / `load_splits(run_dir, frame)`
- `check_no_leak(frame, splits)` raises `DataError` when a patient sits on two sides
- `check_train_classes(frame, splits, task)` raises `DataError` when a training side lacks a class
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ctnodule.atomic import atomic_path
from ctnodule.errors import ConfigError, DataError
from ctnodule.runfolder import RunPaths
from ctnodule.vocab import class_names, task_labels

Split = tuple[np.ndarray, np.ndarray]


def group_ids(frame: pd.DataFrame) -> np.ndarray:
    """The patient each sample is grouped by: `nodule_patient_id` where a sample has one (a composite: a
    nodule of that patient placed into another patient's slice; its label and its nodule are that patient's),
    else `patient_id`."""
    groups = frame["patient_id"].astype(str)
    if "nodule_patient_id" in frame.columns:
        own = frame["nodule_patient_id"]
        groups = own.where(own.notna() & (own.astype(str) != ""), groups).astype(str)
    return groups.to_numpy()


def patient_kfold(frame: pd.DataFrame, task: str, folds: int = 5, seed: int = 0) -> list[Split]:
    """`folds` patient-grouped, label-stratified (train_idx, val_idx) pairs of positions into `frame`.

    Every patient is in exactly one validation fold. Raises `DataError` when the data cannot support the
    split (empty, one patient, fewer patients than folds, a class held by fewer patients than folds, a
    class missing from a training fold) and says what to change.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
        raise ConfigError(f"folds must be an integer >= 2, got {folds!r} (use patient_holdout for one split)")
    labels, groups = _check_splittable(frame, task, folds, what=f"{folds}-fold CV")
    splitter = StratifiedGroupKFold(n_splits=int(folds), shuffle=True, random_state=seed)
    splits = [(np.sort(tr), np.sort(va)) for tr, va in splitter.split(np.zeros(len(frame)), labels, groups)]
    check_train_classes(frame, splits, task)
    check_no_leak(frame, splits)
    return splits


def patient_holdout(frame: pd.DataFrame, task: str, test_size: float = 0.2, seed: int = 0) -> Split:
    """The seed's holdout done by patient: (train_idx, val_idx), about `test_size` of patients held out.

    Implemented as the first fold of a patient-grouped stratified k-fold with k = round(1 / test_size), so
    the held-out share is 1/k (0.2 -> exactly one fifth of the patients, stratified by label).
    """
    from sklearn.model_selection import StratifiedGroupKFold

    if not 0.0 < float(test_size) <= 0.5:
        raise ConfigError(f"test_size must be in (0, 0.5], got {test_size!r}")
    k = max(2, round(1.0 / float(test_size)))
    labels, groups = _check_splittable(frame, task, 2, what=f"a {test_size:.0%} holdout")
    n_patients = len(np.unique(groups))
    k = min(k, n_patients)
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # only the first of the k folds is used: a class rarer than k is fine
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        train, val = next(iter(splitter.split(np.zeros(len(frame)), labels, groups)))
    split = (np.sort(train), np.sort(val))
    check_train_classes(frame, [split], task)
    check_no_leak(frame, [split])
    return split


def check_no_leak(frame: pd.DataFrame, splits: list[Split]) -> None:
    """Raise `DataError` if any patient is on both sides of a split, or (k-fold) in two validation folds."""
    patients = group_ids(frame)
    n = len(frame)
    seen_val: dict[str, int] = {}
    for k, (train, val) in enumerate(splits):
        train, val = np.asarray(train), np.asarray(val)
        if len(np.intersect1d(train, val)):
            raise DataError(f"split {k}: {len(np.intersect1d(train, val))} sample(s) are both train and val")
        if len(train) and (train.min() < 0 or train.max() >= n) or len(val) and (val.min() < 0 or val.max() >= n):
            raise DataError(f"split {k}: indices outside the dataset's {n} rows")
        both = np.intersect1d(patients[train], patients[val])
        if len(both):
            raise DataError(
                f"split {k} leaks patients between train and val: {', '.join(both[:5])}"
                f"{' ...' if len(both) > 5 else ''} ({len(both)} patient(s)); split by patient_id"
            )
        if len(splits) > 1:
            for p in np.unique(patients[val]):
                if p in seen_val:
                    raise DataError(f"patient {p} is in validation folds {seen_val[p]} and {k}")
                seen_val[p] = k


def save_splits(run_dir: str | Path, frame: pd.DataFrame, splits: list[Split]) -> list[Path]:
    """Write `run_dir/splits/fold-{k}.csv` (sample_id, patient_id, split in {train, val}) for each split.

    Only the rows of each split are listed, so a holdout's file holds every sample once. Atomic writes.
    """
    check_no_leak(frame, splits)
    paths = RunPaths(Path(run_dir))
    for k, (train, val) in enumerate(splits):
        rows = np.concatenate([np.asarray(train), np.asarray(val)])
        table = pd.DataFrame({
            "sample_id": frame["sample_id"].astype(str).to_numpy()[rows],
            "patient_id": frame["patient_id"].astype(str).to_numpy()[rows],
            "split": ["train"] * len(train) + ["val"] * len(val),
        })
        with atomic_path(paths.split_file(k)) as tmp:
            table.to_csv(tmp, index=False)
    return [paths.split_file(k) for k in range(len(splits))]


def load_splits(run_dir: str | Path, frame: pd.DataFrame) -> list[Split]:
    """Read `run_dir/splits/fold-*.csv` back into positional (train_idx, val_idx) pairs into `frame`.

    The frame must hold every listed sample with the same patient; a split file from another dataset is a
    `DataError`, and the result is checked for leakage.
    """
    paths = RunPaths(Path(run_dir))
    files = paths.split_files()
    if not files:
        raise DataError("no split files (fold-*.csv) here; was the run written completely?", paths.splits)
    position = pd.Series(np.arange(len(frame)), index=frame["sample_id"].astype(str).to_numpy())
    if position.index.has_duplicates:
        raise DataError("the dataset has duplicate sample_id values; splits cannot be mapped onto it")
    patients = frame["patient_id"].astype(str).to_numpy()
    splits = []
    for path in files:
        table = pd.read_csv(path, dtype=str)
        missing_cols = {"sample_id", "patient_id", "split"} - set(table.columns)
        if missing_cols:
            raise DataError(f"missing column(s) {sorted(missing_cols)}", path)
        unknown = ~table["sample_id"].isin(position.index)
        if unknown.any():
            raise DataError(
                f"sample {table['sample_id'][unknown].iloc[0]!r} is not in this dataset "
                f"({int(unknown.sum())} unknown); these splits belong to another dataset", path,
            )
        idx = position[table["sample_id"]].to_numpy()
        moved = patients[idx] != table["patient_id"].to_numpy()
        if moved.any():
            raise DataError(f"sample {table['sample_id'][moved].iloc[0]!r} has another patient_id here", path)
        bad = ~table["split"].isin(["train", "val"])
        if bad.any():
            raise DataError(f"split value {table['split'][bad].iloc[0]!r}; expected train or val", path)
        is_val = (table["split"] == "val").to_numpy()
        splits.append((np.sort(idx[~is_val]), np.sort(idx[is_val])))
    check_no_leak(frame, splits)
    return splits


def _check_splittable(frame: pd.DataFrame, task: str, folds: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    if frame is None or len(frame) == 0:
        raise DataError("the dataset is empty: nothing to split")
    if "patient_id" not in frame.columns:
        raise DataError("the dataset has no patient_id column; splits must be by patient")
    labels = task_labels(frame, task)
    groups = group_ids(frame)
    n_patients = len(np.unique(groups))
    if n_patients == 1:
        raise DataError(
            f"the dataset holds one patient only ({groups[0]}); a patient-level split needs at least 2 "
            "patients (and realistically many more) - no honest validation is possible"
        )
    if n_patients < folds:
        raise DataError(f"{what} needs at least {folds} patients but the dataset has {n_patients}; use fewer folds")
    names = class_names(task)
    for c in np.unique(labels):
        holders = len(np.unique(groups[labels == c]))
        if holders < folds:
            binary = " or the binary task (--task binary)" if task == "multiclass" else ""
            fix = (f"Use fewer folds (--folds {holders}){binary}" if holders >= 2 else
                   f"No patient-level split can show it to both training and validation: use more data{binary}")
            raise DataError(
                f"class {names[c]!r} ({task}) is held by only {holders} patient(s) "
                f"({int((labels == c).sum())} sample(s)); {what} needs at least {folds} so every fold can "
                f"see it. {fix}"
            )
    return labels, groups


def check_train_classes(frame: pd.DataFrame, splits: list[Split], task: str) -> None:
    """Raise `DataError` when a class present in `frame` is missing from a training side of `splits`."""
    labels = task_labels(frame, task)
    present = np.unique(labels)
    names = class_names(task)
    for k, (train, _) in enumerate(splits):
        lacking = np.setdiff1d(present, np.unique(labels[train]))
        if len(lacking):
            raise DataError(
                f"class(es) {[names[c] for c in lacking]} are missing from training fold {k}: the model could "
                "never learn them. Use fewer folds" + (" or --task binary" if task == "multiclass" else "")
            )
