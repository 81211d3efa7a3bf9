"""`train` on the phantom end to end: run folder, out-of-fold predictions, Predictor, evaluate, predict,
resume, and the errors a user can hit. Synthetic data and tiny random-init backbones: this checks the
machinery, not accuracy (bench/bench_train.py measures that on the real data)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from ctnodule.data.dataset import SliceDataset
from ctnodule.errors import DataError, RunError
from ctnodule.evaluate.run import evaluate_run
from ctnodule.explain.heatmaps import predict_with_heatmaps
from ctnodule.predict.apply import predict_files
from ctnodule.predict.run import load_run
from ctnodule.recipe import load_preset
from ctnodule.runfolder import RunPaths
from ctnodule.workflow import train_and_report as train

from .recipes import QUIET, tiny_frozen_cfg


@pytest.fixture(scope="module")
def frozen_run(phantom, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "frozen"
    with pytest.warns(UserWarning, match="NO PRETRAINED WEIGHTS|no nodule size"):
        train(phantom, out, tiny_frozen_cfg(weights="auto"), **QUIET)
    return out


def test_run_folder_is_complete(frozen_run, phantom):
    paths = RunPaths(frozen_run)
    for f in (paths.config, paths.pipeline, paths.history, paths.oof, paths.metrics, paths.model, paths.report):
        assert f.is_file(), f
    assert sorted(p.name for p in (frozen_run / "splits").iterdir()) == ["fold-0.csv", "fold-1.csv"]
    assert (paths.figures / "roc.png").is_file()
    oof = pd.read_csv(paths.oof, dtype={"sample_id": str})
    nodules = SliceDataset(phantom).view("nodule").frame
    assert sorted(oof["sample_id"]) == sorted(nodules["sample_id"])  # every sample scored exactly once
    assert np.allclose(oof[["proba_0", "proba_1"]].sum(axis=1), 1, atol=1e-5)
    hist = pd.read_csv(paths.history)
    assert set(hist["fold"]) == {0, 1, -1}
    metrics = json.loads(paths.metrics.read_text())
    assert {"n", "accuracy", "roc_auc", "ci", "baselines", "folds"} <= set(metrics)
    cfg = yaml.safe_load(paths.config.read_text())
    assert cfg["pretrained"] is False and cfg["weights_source"].startswith("random init")  # resnet18: none ship
    assert cfg["seed"] == 0 and cfg["format_version"] == 1


def test_predictor_exposes_what_the_network_sees(frozen_run, phantom):
    pred = load_run(frozen_run)
    assert pred.task == "binary" and pred.view == "nodule" and pred.class_names[1].startswith("malignant")
    slices = pred.load_slices(SliceDataset(phantom))[:5]
    x = pred.prepare(slices)
    assert x.shape == (5, 3, 64, 64) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    proba = pred.predict_proba(slices)
    assert proba.shape == (5, 2) and np.allclose(proba.sum(1), 1, atol=1e-5)
    with torch.no_grad():
        via_model = pred.model(x).softmax(1).numpy()
    assert np.allclose(via_model, proba, atol=1e-3)  # .model is the same function Grad-CAM differentiates


def test_evaluate_and_predict_use_the_runs_own_preprocessing(frozen_run, phantom, tmp_path):
    m = evaluate_run(frozen_run, phantom, tmp_path / "eval", n_boot=50)
    assert m["n"] == len(SliceDataset(phantom).view("nodule"))
    assert (tmp_path / "eval" / "metrics.json").is_file() and (tmp_path / "eval" / "report.html").is_file()
    ds = SliceDataset(phantom).view("nodule")
    row = ds.frame.iloc[0]
    files = [phantom / row["path"]]
    out = predict_files(frozen_run, files, tmp_path / "p.csv", masks=[phantom / row["mask_path"]])
    assert list(out.columns) == ["sample_id", "source", "proba_benign (1-3)", "proba_malignant (4-5)",
                                 "predicted", "score"]
    assert 0 <= out["score"].iloc[0] <= 1
    with pytest.raises(DataError, match="one per image"):
        predict_files(frozen_run, files, tmp_path / "q.csv", masks=[])


def test_predict_explain_adds_a_heat_map_per_prediction(frozen_run, phantom, tmp_path):
    from ctnodule.data.io import read_nrrd

    ds = SliceDataset(phantom).view("nodule")
    rows = ds.frame.iloc[:2]
    files = [phantom / p for p in rows["path"]]
    out = predict_with_heatmaps(frozen_run, files, tmp_path / "p.csv", masks=[phantom / p for p in rows["mask_path"]],
                                method="gradcam")
    assert out["heatmap"].tolist() == [str(tmp_path / "p_heatmaps" / f"{f.name}.png") for f in files]
    for f, png in zip(files, out["heatmap"]):
        cam, _ = read_nrrd(png[: -len(".png")] + ".nrrd")
        image, _ = read_nrrd(f)
        assert cam.shape == image.shape[-2:]  # on the input's own pixel grid, not the network's
        assert cam.min() >= 0.0 and cam.max() <= 1.0 and cam.max() > 0.0
        assert Path(png).stat().st_size > 0


def test_existing_run_needs_resume_or_force(frozen_run, phantom):
    with pytest.raises(RunError, match="--resume.*--force"):
        train(phantom, frozen_run, tiny_frozen_cfg(weights="auto"), **QUIET)
    with pytest.raises(RunError, match="different recipe"):
        train(phantom, frozen_run, tiny_frozen_cfg(weights="auto", epochs=3), resume=True, **QUIET)


def test_corrupt_checkpoint_and_other_format_version(frozen_run, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(frozen_run, bad)
    (bad / "model.pt").write_bytes(b"junk")
    with pytest.raises(RunError, match="corrupt checkpoint"):
        load_run(bad)
    cfg = yaml.safe_load((bad / "config.yaml").read_text())
    cfg["format_version"] = 99
    (bad / "config.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(RunError, match="format 99"):
        load_run(bad)


def test_finetune_seed_preset_and_resume_reuses_finished_folds(phantom, tmp_path):
    cfg = load_preset("seed", backbone="mobilenetv3_small_100", weights="none", task="multiclass", folds=2,
                      epochs=1, preprocess="default")  # the seed's own preprocessing: see test_seed_recipe_*
    out = tmp_path / "ft"
    train(phantom, out, cfg, **QUIET)
    before = pd.read_csv(out / "oof_predictions.csv")
    (out / "model.pt").unlink()
    (out / "metrics.json").unlink()
    msgs: list[str] = []
    train(phantom, out, cfg, resume=True, log=msgs.append)
    assert sum("done earlier" in m for m in msgs) == 2 and any("final model" in m for m in msgs)
    pd.testing.assert_frame_equal(before, pd.read_csv(out / "oof_predictions.csv"))
    assert load_run(out).predict_proba(load_run(out).load_slices(SliceDataset(phantom))[:2]).shape == (2, 5)


def _subset(phantom: Path, dest: Path, keep) -> Path:
    frame = pd.read_csv(phantom / "manifest.csv", dtype={"sample_id": str, "patient_id": str})
    dest.mkdir()
    for sub in ("slices", "masks", "context"):
        if (phantom / sub).exists():
            os.symlink(phantom / sub, dest / sub)
    frame[keep(frame)].to_csv(dest / "manifest.csv", index=False)
    return dest


def test_bad_data_is_a_clear_error(phantom, tmp_path):
    one = _subset(phantom, tmp_path / "one", lambda f: f["patient_id"] == f["patient_id"].iloc[0])
    with pytest.raises(DataError, match="patient"):
        train(one, tmp_path / "r1", tiny_frozen_cfg(), **QUIET)
    nodule_only = _subset(phantom, tmp_path / "nod", lambda f: f["view"] == "nodule")
    with pytest.raises(DataError, match="no 'full'-view samples"):
        train(nodule_only, tmp_path / "r2", tiny_frozen_cfg(view="full"), **QUIET)
    no_fives = _subset(phantom, tmp_path / "no5", lambda f: f["malignancy"] != 5)
    with pytest.raises(DataError, match=r"no nodule-view samples of class \['5'\]"):
        train(no_fives, tmp_path / "r3", tiny_frozen_cfg(task="multiclass"), **QUIET)

    def one_patient_with_fives(f):
        five = f.loc[f["malignancy"] == 5, "patient_id"].iloc[0]
        return (f["malignancy"] != 5) | (f["patient_id"] == five)

    rare = _subset(phantom, tmp_path / "rare5", one_patient_with_fives)
    with pytest.raises(DataError, match="5"):  # a fold would miss class 5 in training or validation
        train(rare, tmp_path / "r4", tiny_frozen_cfg(task="multiclass"), **QUIET)
