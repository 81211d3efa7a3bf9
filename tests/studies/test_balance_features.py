"""Synthetic samples never reach a validation fold (every balancer, patient-grouped CV, feature path)."""

import numpy as np
import pytest

from ctnodule.data.dataset import SliceDataset
from ctnodule.errors import DataError
from ctnodule.studies.balance_features import check_no_synthetic_in_validation, feature_path_benchmark


def test_leak_check_catches_a_validation_row():
    tr, va = np.array([0, 1, 2, 5]), np.array([3, 4])
    synthetic = np.array([False, False, True])
    check_no_synthetic_in_validation(np.array([0, 3, -1]), synthetic, tr, va)  # rows 0, 3 of tr = samples 0, 5
    with pytest.raises(DataError, match="validation sample"):
        check_no_synthetic_in_validation(np.array([0, 3, -1]), synthetic, np.array([0, 1, 2, 4]), va)


def test_only_real_validation_patients_are_scored(phantom):
    ds = SliceDataset(phantom).view("nodule")
    logs = []
    tiny = {"epochs": 1, "width": 8, "batch_size": 16}
    scores, oof = feature_path_benchmark(ds, ["none", "smote", "cgan", "diffusion"], folds=2, seed=0,
                                         generator_params={"cgan": tiny, "diffusion": {**tiny, "sample_steps": 2}},
                                         log=logs.append)
    for (task, method), part in oof.groupby(["task", "method"]):
        # every real sample scored exactly once, by the fold that held its patient out; nothing generated
        assert sorted(part["sample_id"]) == sorted(ds.frame["sample_id"]), (task, method)
        for fold, rows in part.groupby("fold"):
            assert not set(rows["patient_id"]) & set(part.loc[part["fold"] != fold, "patient_id"])
    assert len(scores) == 2 * 4 * 2 and scores["balanced_accuracy"].between(0, 1).all()
    assert any("cgan trained" in line for line in logs) and any("diffusion trained" in line for line in logs)
