"""The model-card figures: they draw what they are given and refuse malformed input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from ctnodule.errors import ConfigError, DataError
from ctnodule.evaluate.plots import (
    calibration_figure,
    confusion_matrix_figure,
    learning_curves_figure,
    roc_figure,
)

from .conftest import noisy_scores

NAMES5 = ["1", "2", "3", "4", "5"]


def test_confusion_matrix_shows_counts_and_row_fractions():
    y = np.array([0, 0, 0, 1, 1, 2])
    pred = np.array([0, 0, 1, 1, 1, 0])
    fig = confusion_matrix_figure(y, pred, ["a", "b", "c"])
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts[:3] == ["2\n0.67", "1\n0.33", "0\n0.00"] and texts[6] == "1\n1.00"
    raw = confusion_matrix_figure(y, pred, ["a", "b", "c"], normalize=None)
    assert [t.get_text() for t in raw.axes[0].texts][:3] == ["2", "1", "0"]
    with pytest.raises(ConfigError, match="normalize"):
        confusion_matrix_figure(y, pred, ["a", "b", "c"], normalize="rows")


def test_roc_one_curve_for_binary_one_per_present_class_for_multiclass():
    y, p = noisy_scores(200, 2, 0.8, seed=0)
    assert len(roc_figure(y, p, ["benign", "malignant"]).axes[0].lines) == 2  # chance + curve
    y, p = noisy_scores(300, 5, 0.8, seed=0)
    keep = y != 2
    fig = roc_figure(y[keep], p[keep], NAMES5)
    assert len(fig.axes[0].lines) == 1 + 4
    assert "AUC" in fig.axes[0].get_legend().get_texts()[1].get_text()


def test_calibration_reports_ece_and_bin_counts():
    y, p = noisy_scores(400, 2, 0.8, seed=1)
    fig = calibration_figure(y, p, ["benign", "malignant"])
    assert isinstance(fig, Figure)
    ax, hist = fig.axes
    assert sum(bar.get_height() for bar in hist.patches) == 400
    assert "ECE" in ax.get_legend().get_texts()[1].get_text()
    multi = calibration_figure(*noisy_scores(400, 5, 0.8, seed=1), NAMES5)
    assert "confidence" in multi.axes[1].get_xlabel()


def test_learning_curves_one_line_pair_per_fold_and_bad_history():
    rows = [{"epoch": e, "fold": f, "train_loss": 1 / (e + 1), "val_loss": 1.2 / (e + 1), "train_acc": 0.5 + e / 20,
             "val_acc": 0.5 + e / 25, "lr": 1e-3 * 0.3 ** (e // 3)} for f in range(3) for e in range(8)]
    fig = learning_curves_figure(pd.DataFrame(rows))
    assert len(fig.axes[0].lines) == 6 and len(fig.axes[2].lines) == 3
    assert fig.axes[2].get_yscale() == "log"
    with pytest.raises(DataError, match="val_acc"):
        learning_curves_figure(pd.DataFrame(rows).drop(columns=["val_acc"]))
    with pytest.raises(DataError, match="no rows"):
        learning_curves_figure(pd.DataFrame(rows).iloc[:0])
