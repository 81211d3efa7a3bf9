"""Patient-grouped stratified splits: no leakage on the real VOI sheet, round trip, clear errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ctnodule.data.splits import (
    check_no_leak,
    check_train_classes,
    group_ids,
    load_splits,
    patient_holdout,
    patient_kfold,
    save_splits,
    task_labels,
)
from ctnodule.errors import ConfigError, DataError


def frame_of(patients: list[str], grades: list[int]) -> pd.DataFrame:
    return pd.DataFrame({"sample_id": [f"s{i}" for i in range(len(patients))], "patient_id": patients,
                         "malignancy": grades, "label_binary": [int(g >= 4) for g in grades]})


@pytest.mark.realdata
@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_kfold_on_real_voi_sheet_has_no_leak_and_is_stratified(voi_frame, task):
    splits = patient_kfold(voi_frame, task, folds=5, seed=0)
    y = task_labels(voi_frame, task)
    patients = voi_frame["patient_id"].to_numpy()
    val_all = np.concatenate([val for _, val in splits])
    assert np.array_equal(np.sort(val_all), np.arange(len(voi_frame)))  # every sample validated exactly once
    for train, val in splits:
        assert not set(patients[train]) & set(patients[val])
        assert len(train) + len(val) == len(voi_frame)
        # stratified: each fold's class shares within 5 points of the whole sheet's
        share = np.bincount(y[val], minlength=y.max() + 1) / len(val)
        assert np.abs(share - np.bincount(y) / len(y)).max() < 0.05
    assert [v.tolist() for _, v in splits] == [v.tolist() for _, v in patient_kfold(voi_frame, task, 5, seed=0)]
    assert [v.tolist() for _, v in splits] != [v.tolist() for _, v in patient_kfold(voi_frame, task, 5, seed=1)]


@pytest.mark.realdata
def test_holdout_on_real_voi_sheet_is_a_patient_fifth(voi_frame):
    train, val = patient_holdout(voi_frame, "multiclass", test_size=0.2, seed=0)
    patients = voi_frame["patient_id"].to_numpy()
    assert not set(patients[train]) & set(patients[val])
    assert len(set(patients[val])) / voi_frame["patient_id"].nunique() == pytest.approx(0.2, abs=0.01)
    check_no_leak(voi_frame, [(train, val)])


def test_save_load_round_trip_and_foreign_dataset(tmp_path):
    rng = np.random.default_rng(0)
    frame = frame_of([f"p{i // 2}" for i in range(60)], list(rng.integers(1, 6, 60)))
    splits = patient_kfold(frame, "binary", folds=3, seed=0)
    paths = save_splits(tmp_path, frame, splits)
    assert [p.name for p in paths] == ["fold-0.csv", "fold-1.csv", "fold-2.csv"]
    table = pd.read_csv(paths[0])
    assert list(table.columns) == ["sample_id", "patient_id", "split"] and set(table["split"]) == {"train", "val"}
    shuffled = frame.sample(frac=1.0, random_state=1).reset_index(drop=True)
    for (a_tr, a_va), (b_tr, b_va) in zip(splits, load_splits(tmp_path, shuffled)):
        assert set(frame["sample_id"][a_va]) == set(shuffled["sample_id"][b_va])
    other = frame.assign(sample_id=frame["sample_id"] + "x")
    with pytest.raises(DataError, match="another dataset"):
        load_splits(tmp_path, other)


def test_leak_is_detected():
    frame = frame_of(["a", "a", "b", "c"], [1, 4, 2, 5])
    with pytest.raises(DataError, match="leaks patients.*a"):
        check_no_leak(frame, [(np.array([0, 2]), np.array([1, 3]))])
    with pytest.raises(DataError, match="validation folds"):
        check_no_leak(frame, [(np.array([2, 3]), np.array([0, 1])), (np.array([3]), np.array([0, 1, 2]))])


def test_bad_data_errors_say_what_to_do():
    with pytest.raises(DataError, match="empty"):
        patient_kfold(frame_of([], []), "binary")
    with pytest.raises(DataError, match="one patient only"):
        patient_kfold(frame_of(["a"] * 10, [1, 4] * 5), "binary")
    with pytest.raises(DataError, match="at least 5 patients but the dataset has 4"):
        patient_kfold(frame_of(list("abcd") * 3, [1, 4, 2, 5] * 3), "binary")
    # grade 5 is held by two patients only: 5-fold CV cannot show it to every fold
    patients = [f"p{i}" for i in range(22)]
    grades = [1, 2, 3, 4] * 5 + [5, 5]
    with pytest.raises(DataError, match=r"class '5'.*only 2 patient.*--folds 2.*--task binary"):
        patient_kfold(frame_of(patients, grades), "multiclass", folds=5)
    with pytest.raises(DataError, match=r"class '5'.*only 1 patient.*more data or the binary task"):
        patient_kfold(frame_of(patients[:21], grades[:21]), "multiclass", folds=2)
    with pytest.raises(ConfigError, match="unknown task"):
        patient_kfold(frame_of(patients, grades), "ordinal")
    with pytest.raises(ConfigError, match="folds"):
        patient_kfold(frame_of(patients, grades), "binary", folds=1)


def test_class_missing_from_training_fold():
    frame = frame_of(list("abcdef"), [1, 1, 2, 2, 5, 3])
    with pytest.raises(DataError, match=r"\['5'\] are missing from training fold 0"):
        check_train_classes(frame, [(np.array([0, 2, 5]), np.array([1, 3, 4]))], "multiclass")


def test_composites_group_by_the_nodules_patient():
    """A composite is labelled by its nodule: two composites of one nodule patient placed into different
    background patients are one group; rows without a nodule patient keep their own."""
    frame = frame_of(["bg-1", "bg-2", "P3"], [5, 5, 1])
    frame["nodule_patient_id"] = ["N1", "N1", ""]
    assert group_ids(frame).tolist() == ["N1", "N1", "P3"]
