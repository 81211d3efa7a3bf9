"""Label modes from the manifest, and the rule that readers' ratings are labels, never model inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ctnodule.data.dataset import SliceDataset
from ctnodule.errors import ConfigError, DataError
from ctnodule.models.descriptors import TABULAR_SETS, tabular_features
from ctnodule.models.heads import LogRegHead
from ctnodule.preprocess import Pipeline, PreprocessConfig
from ctnodule.preprocess.inputs import load_slices, to_images
from ctnodule.train.labels import (
    class_targets,
    is_reader_column,
    parse_ratings,
    target_distributions,
    two_point,
)


def _frame() -> pd.DataFrame:
    return pd.DataFrame({"malignancy": [4, 2, 1], "reader_ratings": ["4;4;3;5", "", "1"]})


def test_maxvote_is_one_hot_and_soft_is_the_readers_distribution():
    frame = _frame()
    assert np.array_equal(target_distributions(frame, "maxvote").argmax(1), [3, 1, 0])
    soft = target_distributions(frame, "soft")
    assert np.allclose(soft[0], [0, 0, 0.25, 0.5, 0.25])
    assert np.allclose(soft[1], [0, 1, 0, 0, 0])  # no ratings recorded: the max-vote label
    assert np.allclose(soft.sum(1), 1.0)
    assert np.allclose(target_distributions(frame, "mean"), soft)  # `mean` fits the mean of this distribution


def test_class_targets_of_the_logistic_head():
    frame = _frame()  # readers 4;4;3;5 -> mean 4.0 (1-based); "" -> max vote 2; "1" -> 1
    assert np.allclose(class_targets(frame, "soft", "multiclass")[0], [0, 0, 0.25, 0.5, 0.25])
    assert np.allclose(class_targets(frame, "mean", "multiclass")[0], [0, 0, 0, 1, 0])
    assert np.allclose(two_point(np.array([[0, 0.5, 0.25, 0.25, 0]])), [[0, 0.25, 0.75, 0, 0]])  # mean 2.75
    assert np.allclose(class_targets(frame, "soft", "binary"), [[0.25, 0.75], [1, 0], [1, 0]])
    assert np.allclose(class_targets(frame, "maxvote", "binary")[0], [0, 1])


def test_soft_targets_fit_their_average_when_the_features_say_nothing():
    # constant features: the regression has only its (unpenalised) intercept, whose maximum-likelihood
    # answer under cross-entropy on soft targets is the average target distribution
    targets = np.array([[0.5, 0.5, 0], [0, 0.25, 0.75], [1, 0, 0], [0, 0, 1]])
    head = LogRegHead(C=1.0).fit_distribution(np.ones((4, 3)), targets, n_extra=3)
    assert np.allclose(head.predict_proba(np.ones((2, 3)), 3), targets.mean(0), atol=1e-4)
    # and with one informative feature the hard labels' fit is what one-hot targets give
    x = np.linspace(-1, 1, 8)[:, None]
    y = (x[:, 0] > 0).astype(int) + (x[:, 0] > 0.6)
    soft = LogRegHead(C=1.0).fit_distribution(x, np.eye(3)[y], n_extra=1).predict_proba(x, 3)
    assert np.allclose(soft, LogRegHead(C=1.0).fit(x, y, n_extra=1).predict_proba(x, 3), atol=1e-4)


def test_modes_that_need_reader_ratings_say_so():
    with pytest.raises(ConfigError, match="reader_ratings"):
        target_distributions(pd.DataFrame({"malignancy": [3]}), "soft")
    with pytest.raises(ConfigError, match="--labels"):
        target_distributions(_frame(), "median")
    with pytest.raises(DataError, match="1..5"):
        parse_ratings("3;7")


def _perturb_reader_columns(slices):
    """The same slices with every reader-derived meta value replaced by a different one."""
    out = []
    for k, s in enumerate(slices):
        meta = dict(s.meta)
        for key in list(meta):
            if is_reader_column(key):
                meta[key] = "5;5;5;5" if key == "reader_ratings" else (k * 7 + 3) % 5 + 1
        meta.update({"reader_ratings": "1;2;3;4", "n_readers": 9, "rating_spiculation": 5, "diagnosis": 2})
        out.append(s.replace(meta=meta))
    return out


def test_reader_columns_never_reach_a_models_features(phantom):
    dataset = SliceDataset(phantom).view("nodule")
    assert any(is_reader_column(c) for c in dataset.frame.columns)  # the check below is not vacuous
    slices = load_slices(dataset, "context")[:12]
    changed = _perturb_reader_columns(slices)
    for kind in TABULAR_SETS:
        a, b = tabular_features(slices, kind), tabular_features(changed, kind)
        assert np.array_equal(a, b, equal_nan=True), f"tabular set {kind!r} reads a reader-derived column"
    for recipe in ("default", "nodule_cnn"):  # the default's images and the nodule CNN's (+ mask channel)
        pipe = Pipeline.from_config(PreprocessConfig.named(recipe, "nodule")).fit(slices)
        with_mask = recipe == "nodule_cnn"
        assert np.array_equal(to_images(list(pipe.transform_many(slices, workers=1)), with_mask),
                              to_images(list(pipe.transform_many(changed, workers=1)), with_mask))


def test_the_logistic_head_trains_on_the_readers_distribution(phantom, tmp_path):
    """`--labels soft` with a scikit-learn head end to end: the targets come from `reader_ratings` (written
    here: the max vote plus readers one score either side), the run is scored against the max vote."""
    import shutil

    from ctnodule.recipe import load_preset
    from ctnodule.train.api import train

    data = tmp_path / "data"
    shutil.copytree(phantom, data)
    manifest = pd.read_csv(data / "manifest.csv")
    score = manifest["malignancy"].astype(int)
    manifest["reader_ratings"] = [f"{s};{s};{min(s + 1, 5)};{max(s - 1, 1)}" for s in score]
    manifest.to_csv(data / "manifest.csv", index=False)
    runs = {}
    for mode in ("maxvote", "soft"):
        cfg = load_preset("fast", task="multiclass", folds=2, labels=mode)
        runs[mode] = pd.read_csv(train(data, tmp_path / mode, cfg, log=lambda _: None) / "oof_predictions.csv")
    assert (runs["soft"]["y_true"] == runs["maxvote"]["y_true"]).all()  # evaluation: the max vote
    soft, hard = (runs[m][[f"proba_{k}" for k in range(5)]].to_numpy() for m in ("soft", "maxvote"))
    assert np.allclose(soft.sum(1), 1.0) and not np.allclose(soft, hard, atol=1e-3)
