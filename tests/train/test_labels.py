"""Label modes from the manifest, and the rule that readers' ratings are labels, never model inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ctnodule.data.dataset import SliceDataset
from ctnodule.errors import ConfigError, DataError
from ctnodule.models.descriptors import TABULAR_SETS, tabular_features
from ctnodule.preprocess import Pipeline, PreprocessConfig
from ctnodule.preprocess.inputs import load_slices, to_images
from ctnodule.train.labels import is_reader_column, parse_ratings, target_distributions


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
