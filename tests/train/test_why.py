"""A default (logistic-head) run with calibration on the phantom: calibrated out-of-fold probabilities, the
final model's attributions.csv, reasons in `predict`, waterfalls with `--explain`, the model card sections."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctnodule.data.dataset import SliceDataset
from ctnodule.errors import ConfigError
from ctnodule.explain.heatmaps import predict_with_heatmaps
from ctnodule.predict.apply import predict_files
from ctnodule.predict.run import load_run
from ctnodule.recipe import load_preset
from ctnodule.workflow import train_and_report


@pytest.fixture(scope="module")
def platt_run(phantom, tmp_path_factory) -> Path:
    cfg = load_preset("default", segmenter="classical", folds=2, tta=False, calibration="platt")
    return train_and_report(phantom, tmp_path_factory.mktemp("runs") / "platt", cfg, log=lambda m: None)


def test_calibrated_run_writes_attributions_thresholds_and_card(platt_run):
    metrics = json.loads((platt_run / "metrics.json").read_text())
    assert {"ece", "brier", "log_loss"} <= set(metrics["ci"])
    assert set(metrics["thresholds"]) >= {"youden", "sens90", "sens95"}
    table = pd.read_csv(platt_run / "attributions.csv")
    assert len(table) == len(pd.read_csv(platt_run / "oof_predictions.csv"))
    contrib = table[[c for c in table.columns if c.startswith("contrib:")]].to_numpy()
    assert np.allclose(table["base"] + contrib.sum(1), table["output"], atol=1e-6)
    assert "after Platt calibration" in table["space"].iloc[0]
    assert "contrib:image" in table.columns and any("log_diameter" in c for c in table.columns)
    card = (platt_run / "report.html").read_text()
    assert "Decision thresholds" in card and "What the model relies on" in card
    assert (platt_run / "figures" / "attribution_importance.png").is_file()


def test_predict_gives_reasons_that_match_the_attributions(platt_run, phantom, tmp_path):
    ds = SliceDataset(phantom).view("nodule")
    rows = ds.frame.iloc[:3]
    files = [phantom / p for p in rows["path"]]
    masks = [phantom / p for p in rows["mask_path"]]
    out = predict_files(platt_run, files, tmp_path / "p.csv", masks=masks)
    assert out["reasons"].str.count(";").eq(2).all()  # top 3 reasons
    assert out["reasons"].str.contains("toward").all()
    explained = predict_with_heatmaps(platt_run, files, tmp_path / "q.csv", masks=masks)
    assert explained["reasons"].tolist() == out["reasons"].tolist()
    assert all(Path(p).is_file() for p in explained["waterfall"])
    predictor = load_run(platt_run)
    attr, _, _ = predictor.attribute(predictor.load_slices(ds.subset(np.arange(3))))
    p = predictor.predict_proba(predictor.load_slices(ds.subset(np.arange(3))))[:, 1]
    assert np.allclose(attr.output, np.log(p / (1 - p)), atol=1e-4)  # float32 features: 1e-4, not 1e-6


def test_calibration_refuses_heads_and_balancers_it_cannot_serve():
    with pytest.raises(ConfigError, match="scikit-learn heads"):
        load_preset("default", head="mlp", freeze_backbone=True, calibration="platt")
    with pytest.raises(ConfigError, match="resampled"):
        load_preset("default", imbalance="oversample", calibration="isotonic")
