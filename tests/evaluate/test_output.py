"""write_evaluation: an external dataset's predictions judged like a run's out-of-fold predictions."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ctnodule.errors import DataError
from ctnodule.evaluate.metrics import compute_metrics, metric_keys
from ctnodule.evaluate.output import write_evaluation

from .conftest import noisy_scores


def test_writes_metrics_predictions_figures_and_page(tmp_path):
    y, p = noisy_scores(150, 2, 0.8, seed=11)
    preds = pd.DataFrame({"sample_id": [f"s{i}" for i in range(150)], "patient_id": [f"p{i // 3}" for i in range(150)],
                          "y_true": y, "proba_0": p[:, 0], "proba_1": p[:, 1]})
    path = write_evaluation(tmp_path / "ext", preds, "binary", n_boot=200)
    metrics = json.loads(path.read_text())
    assert metrics["roc_auc"] == pytest.approx(compute_metrics(y, p, "binary")["roc_auc"])
    assert set(metrics["ci"]) == set(metric_keys("binary")) - {"n"}
    assert (tmp_path / "ext" / "report.html").is_file()
    assert {f.name for f in (tmp_path / "ext" / "figures").iterdir()} == {"confusion_matrix.png", "roc.png",
                                                                          "calibration.png"}
    assert np.allclose(pd.read_csv(tmp_path / "ext" / "predictions.csv")["proba_1"], p[:, 1])


def test_missing_probability_column_is_a_clear_error(tmp_path):
    preds = pd.DataFrame({"y_true": [0, 1, 2], "proba_0": [1.0, 0, 0]})
    with pytest.raises(DataError, match="proba_1"):
        write_evaluation(tmp_path, preds, "multiclass")
