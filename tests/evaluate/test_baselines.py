"""Majority and size baselines: out-of-fold, on the model's splits, with the size read from the right place."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ctnodule.data.io import write_nrrd
from ctnodule.data.splits import patient_holdout, patient_kfold
from ctnodule.errors import DataError
from ctnodule.evaluate.baselines import evaluate_baselines, majority_baseline, nodule_size_mm, size_baseline


def synthetic_frame(n_patients: int = 60, seed: int = 0) -> pd.DataFrame:
    """Patients with 1-3 nodules whose malignancy grows with log diameter, like LIDC (plus noise)."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_patients):
        for j in range(rng.integers(1, 4)):
            diameter = float(np.exp(rng.normal(2.0, 0.6)))
            grade = int(np.clip(np.rint(1 + 1.6 * (np.log(diameter) - 1.0) + rng.normal(0, 0.6)), 1, 5))
            rows.append({"sample_id": f"p{p}_n{j}", "patient_id": f"p{p}", "malignancy": grade,
                         "label_binary": int(grade >= 4), "diameter_mm": diameter})
    return pd.DataFrame(rows)


def test_majority_predicts_the_training_prior_out_of_fold():
    frame = synthetic_frame()
    splits = patient_kfold(frame, "multiclass", folds=3, seed=0)
    oof = majority_baseline(frame, "multiclass", splits)
    y = frame["malignancy"].to_numpy() - 1
    for train, val in splits:
        prior = np.bincount(y[train], minlength=5) / len(train)
        assert np.allclose(oof[val], prior)
    metrics = evaluate_baselines(frame, "multiclass", splits)["majority"]
    assert metrics["roc_auc"] == pytest.approx(0.5, abs=0.1)


def test_size_baseline_is_out_of_fold_and_holdout_predicts_only_the_held_out():
    frame = synthetic_frame()
    train, val = patient_holdout(frame, "binary", seed=0)
    oof = size_baseline(frame, "binary", [(train, val)])
    assert np.isnan(oof[train]).all() and np.allclose(oof[val].sum(axis=1), 1.0)
    # larger nodules get a higher malignant probability (monotone in log size)
    order = np.argsort(frame["diameter_mm"].to_numpy()[val])
    assert np.all(np.diff(oof[val][order, 1]) >= -1e-12)
    result = evaluate_baselines(frame, "binary", [(train, val)])
    assert result["size"]["n"] == len(val)
    assert result["size"]["roc_auc"] > 0.8


def test_size_column_preference_and_mask_measurement(tmp_path):
    frame = synthetic_frame(5)
    frame["mask_diameter_mm"] = 7.0
    assert np.all(nodule_size_mm(frame) == 7.0)  # mask-measured beats the source's diameter
    frame = frame.drop(columns=["mask_diameter_mm", "diameter_mm"])
    with pytest.raises(DataError, match="no nodule size"):
        nodule_size_mm(frame)
    mask = np.zeros((20, 20), np.uint8)
    mask[5:15, 5:13] = 1  # 80 px at 0.5 x 0.75 mm = 30 mm^2
    write_nrrd(tmp_path / "m.nrrd", mask, (0.5, 0.75))
    frame["mask_path"] = "m.nrrd"
    with pytest.raises(DataError, match="pass the dataset folder"):
        nodule_size_mm(frame)
    assert nodule_size_mm(frame, tmp_path) == pytest.approx(2 * np.sqrt(30 / np.pi))


def test_class_missing_from_a_training_fold_gets_zero_probability():
    frame = synthetic_frame(40, seed=3)
    y = frame["malignancy"].to_numpy() - 1
    rare = np.flatnonzero(y == np.bincount(y, minlength=5).argmin())
    val = rare  # every sample of the rarest class is validation: training never sees it
    train = np.setdiff1d(np.arange(len(frame)), val)
    oof = size_baseline(frame, "multiclass", [(train, val)])
    assert np.all(oof[val][:, y[rare[0]]] == 0) and np.allclose(oof[val].sum(axis=1), 1.0)


@pytest.mark.realdata
def test_size_baseline_on_the_real_voi_sheet(voi_frame):
    """The known fact this project measures itself against: log size alone gives binary AUC ~0.90."""
    splits = patient_kfold(voi_frame, "binary", folds=5, seed=0)
    result = evaluate_baselines(voi_frame, "binary", splits)
    assert result["size"]["n"] == len(voi_frame) == 800
    assert 0.85 < result["size"]["roc_auc"] < 0.95
    assert result["majority"]["accuracy"] == pytest.approx(1 - voi_frame["label_binary"].mean(), abs=0.01)
    multi = evaluate_baselines(voi_frame, "multiclass", patient_kfold(voi_frame, "multiclass", 5, 0))
    assert multi["size"]["qwk"] > multi["majority"]["qwk"] + 0.3


def test_radiomics_baseline_uses_the_manifest_columns_out_of_fold():
    frame = synthetic_frame()
    rng = np.random.default_rng(1)
    # two informative "features" (log size, noisy) and one constant, plus a missing value
    frame["radiomics_shape_A"] = np.log(frame["diameter_mm"]) + rng.normal(0, 0.05, len(frame))
    frame["radiomics_firstorder_B"] = rng.normal(0, 1, len(frame))
    frame["radiomics_glcm_C"] = 1.0
    frame.loc[0, "radiomics_shape_A"] = np.nan
    splits = patient_kfold(frame, "binary", folds=4, seed=0)
    got = evaluate_baselines(frame, "binary", splits)
    assert set(got) == {"majority", "size", "radiomics"}
    assert got["radiomics"]["n"] == len(frame) and got["radiomics"]["roc_auc"] > 0.8
    assert "radiomics" not in evaluate_baselines(frame.drop(columns=[c for c in frame if c.startswith("radiomics_")]),
                                                 "binary", splits)
