"""The nodule-CNN strategy (preset nodule-cnn) end to end on the phantom: patient-grouped folds, a run
folder that predicts and explains the image model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from ctnodule.errors import ConfigError
from ctnodule.recipe import load_preset


@pytest.fixture(scope="module")
def cnn_run(phantom, tmp_path_factory):
    from ctnodule.train.api import train

    cfg = load_preset("nodule-cnn", task="multiclass", epochs=1, folds=2)
    return train(phantom, tmp_path_factory.mktemp("runs") / "cnn", cfg, log=lambda _: None)


def test_no_patient_in_two_folds_and_every_sample_scored_once(cnn_run, phantom):
    from ctnodule.data.dataset import SliceDataset

    frame = SliceDataset(phantom).view("nodule").frame
    folds = [pd.read_csv(p) for p in sorted((cnn_run / "splits").glob("fold-*.csv"))]
    held_out = [set(f.loc[f["split"] == "val", "patient_id"]) for f in folds]
    assert not held_out[0] & held_out[1]
    for f in folds:
        assert not set(f.loc[f["split"] == "train", "patient_id"]) & set(f.loc[f["split"] == "val", "patient_id"])
    oof = pd.read_csv(cnn_run / "oof_predictions.csv")
    assert sorted(oof["sample_id"]) == sorted(frame["sample_id"])
    probs = oof[[f"proba_{k}" for k in range(5)]].to_numpy()
    assert np.allclose(probs.sum(1), 1.0, atol=1e-5)


def test_the_run_predicts_fused_and_grad_cam_explains_the_image_model(cnn_run, phantom):
    from ctnodule.data.dataset import SliceDataset
    from ctnodule.explain.gradcam import CamExplainer
    from ctnodule.predict.run import load_run

    predictor = load_run(cnn_run)
    slices = predictor.load_slices(SliceDataset(phantom))[:4]
    x = predictor.prepare(slices)
    assert x.shape[1:] == (4, 32, 32)  # 2.5D context + the nodule mask the roi net pools on
    fused = predictor.predict_proba(slices)
    image_only = predictor.model(x).softmax(1).detach().numpy()
    assert fused.shape == (4, 5) and not np.allclose(fused, image_only)  # the descriptors count
    with CamExplainer(predictor.model, "gradcam") as cam:
        maps, _, _ = cam(x, None)
    assert cam.grid_ and min(cam.grid_) >= 8
    # the map is kept on the 4-mm cells the mask touches, grown by one cell; bilinear upsampling adds up
    # to one more: nothing beyond 12 px (mm) of the outline
    mask = x[:, 3:] > 0
    assert mask.flatten(1).any(1).all()
    outside = torch.nn.functional.max_pool2d(mask.float(), 25, 1, 12)[:, 0].numpy() == 0
    assert outside.any() and maps[outside].max() < 0.05


def test_label_modes_need_the_ordinal_or_the_logistic_head():
    with pytest.raises(ConfigError, match="ordinal"):
        load_preset("seed", labels="soft")
    assert load_preset("default", labels="mean", imbalance="weights").labels == "mean"  # class weights compose
    with pytest.raises(ConfigError, match="imbalance"):  # resampling and calibration act on hard labels
        load_preset("default", labels="soft", imbalance="oversample")
    # the default's own soft labels give way where the options cannot take them
    assert load_preset("default").labels == "soft"
    assert load_preset("default", imbalance="smote").labels == "maxvote"
    assert load_preset("default", calibration="platt").labels == "maxvote"
    assert load_preset("default", head="svm").labels == "maxvote"
