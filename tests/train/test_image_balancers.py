"""Pixel balancers (`smote`, `cgan`) inside `train` with the default frozen-backbone preset: the training
fold's IMAGES are resampled before the backbone, and generated rows never reach the out-of-fold predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ctnodule.data.dataset import SliceDataset
from ctnodule.recipe import load_preset
from ctnodule.runfolder import RunPaths
from ctnodule.train.api import train


@pytest.mark.filterwarnings("ignore::UserWarning")  # random-init backbone, SMOTE's lowered k on the phantom
@pytest.mark.parametrize("method, params", [("smote", {"k_neighbors": 2}),
                                            ("cgan", {"epochs": 1, "width": 4, "batch_size": 16})])
@pytest.mark.parametrize("head", ["logreg", "linear"])
def test_image_balancer_in_frozen_preset(phantom, tmp_path, monkeypatch, method, params, head):
    import ctnodule.train.strategies as fold_mod

    calls = []
    real = fold_mod.extract_features

    def spy(images, *a, **kw):
        calls.append(images.shape)
        return real(images, *a, **kw)

    monkeypatch.setattr(fold_mod, "extract_features", spy)
    overrides = {} if head == "logreg" else {"head": "linear", "head_params": {}, "epochs": 1}
    cfg = load_preset("default", segmenter="classical", task="binary", backbone="resnet18", weights="none", folds=2, tta=False,
                      imbalance=method, imbalance_params=params, **overrides)
    train(phantom, tmp_path / "run", cfg, log=lambda m: None)
    frame = SliceDataset(phantom).view("nodule").frame
    oof = pd.read_csv(RunPaths(tmp_path / "run").oof, dtype={"sample_id": str})
    assert sorted(oof["sample_id"]) == sorted(frame["sample_id"].astype(str))  # every real sample once, no synthetic
    # per fold + final fit: features of the whole dataset, then of the generated training images only
    n = len(frame)
    generated = [s for s in calls if s[0] != n]
    assert generated and all(s[1:] == calls[0][1:] for s in generated)
    assert np.isfinite(oof.filter(like="proba_").to_numpy()).all()


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_feature_resampler_final_fit_with_seed_zero(phantom, tmp_path):
    """The final fit is fold -1: with seed 0 the resampler's seed must still be valid for imbalanced-learn."""
    cfg = load_preset("default", segmenter="classical", task="binary", backbone="resnet18", weights="none", folds=2, tta=False, seed=0,
                      imbalance="oversample")
    train(phantom, tmp_path / "run", cfg, log=lambda m: None)
    assert RunPaths(tmp_path / "run").model.is_file()
