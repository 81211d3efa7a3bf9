"""`explain_run` / `ctnodule explain` / `explain_slices` end to end on a tiny real run over the phantom."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from ctnodule.data.dataset import SliceDataset
from ctnodule.errors import CTNoduleError
from ctnodule.explain import cam_mass_in_mask, explain_run, explain_slices


@pytest.fixture(scope="module")
def run(phantom, tmp_path_factory):
    """A real (if tiny) run on half the phantom's patients: frozen EfficientNet-Lite0 features, MLP head,
    2 folds, 1 epoch (the explained samples come from the whole phantom)."""
    from ctnodule.recipe import load_preset
    from ctnodule.workflow import train_and_report as train

    ds = SliceDataset(phantom)
    patients = sorted(ds.frame["patient_id"].unique())[::2]

    cfg = load_preset("default", segmenter="classical", view="nodule", task="binary", backbone="efficientnet_lite0",
                      freeze_backbone=True, epochs=1, folds=2, tta=False)
    return train(ds.subset(ds.frame["patient_id"].isin(patients).to_numpy()), tmp_path_factory.mktemp("run") / "run",
                 cfg, log=lambda m: None)


@pytest.fixture(scope="module")
def explained(run, phantom, tmp_path_factory):
    out = tmp_path_factory.mktemp("explain") / "out"
    return explain_run(run, phantom, out, n=8, faithfulness=3, log=lambda m: None)


def test_writes_scores_pngs_and_gallery(explained, run, phantom):
    from ctnodule.predict.run import load_run

    loc = json.loads((explained / "localization.json").read_text())
    per = loc["per_sample"]
    assert loc["n"] == len(per) == 8 and loc["view"] == "nodule" and loc["synthetic"] is True
    assert {r["true"] for r in per} == {0, 1}  # drawn class by class
    assert loc["region_source"] == {"mask": 8}  # every phantom sample has a mask
    scored = [r for r in per if r["cam_in_mask"] is not None]  # None: Grad-CAM found no positive evidence
    assert len(scored) == loc["n_scored"] == 8 - loc["n_empty_maps"] > 0
    assert all(0.0 <= r["cam_in_mask"] <= 1.0 and 0.0 < r["area_fraction"] < 1.0 for r in scored)
    assert loc["mean_cam_in_mask"] == pytest.approx(np.mean([r["cam_in_mask"] for r in scored]))
    assert loc["pointing_game"] == pytest.approx(np.mean([r["pointing_game"] for r in scored]))
    assert 0.0 < loc["mean_area_fraction"] < 1.0
    assert loc["mean_lift"] == pytest.approx(np.mean([r["cam_in_mask"] / r["area_fraction"] for r in scored]))
    # predictions are the run's own: the same as Predictor.predict_proba on those samples
    predictor = load_run(run)
    ds = SliceDataset(phantom).view("nodule")
    rows = ds.frame.reset_index(drop=True)
    idx = [int(np.flatnonzero(rows["sample_id"] == r["sample_id"])[0]) for r in per]
    from ctnodule.preprocess.inputs import load_slices

    probs = predictor.predict_proba(load_slices(ds.subset(idx), predictor.config["channels"]))
    assert [r["pred"] for r in per] == probs.argmax(1).tolist()
    for r in per:
        img = cv2.imread(str(explained / r["png"]))
        assert img is not None and img.shape[0] >= 256 and img.shape[1] > 2 * img.shape[0] - 50
    html = (explained / "report.html").read_text()
    for fig in ("localization.png", "gallery_true_0.png", "gallery_true_1.png"):
        assert (explained / "figures" / fig).is_file() and f"figures/{fig}" in html


def test_refuses_to_overwrite_without_force(explained, run, phantom):
    with pytest.raises(CTNoduleError, match="--force"):
        explain_run(run, phantom, explained, n=2, log=lambda m: None)


def test_explain_slices_maps_on_each_input_grid(run, phantom):
    from ctnodule.predict.run import load_run
    from ctnodule.preprocess.inputs import load_slices

    predictor = load_run(run)
    ds = SliceDataset(phantom).view("nodule")
    slices = load_slices(ds.subset([0, 1, 2]), predictor.config["channels"])  # 2.5D stacks, as trained
    maps = explain_slices(predictor, slices)
    assert len(maps) == 3
    for s, m in zip(slices, maps):
        assert m.shape == s.array.shape[-2:] and m.dtype == np.float32 and 0.0 <= m.min() and m.max() <= 1.0
        assert np.isfinite(cam_mass_in_mask(m, s.mask))


def test_cli_explain(run, phantom, tmp_path):
    from ctnodule.cli import app

    out = tmp_path / "cli"
    result = CliRunner().invoke(app, ["explain", str(run), str(phantom), "--out", str(out), "--n", "2",
                                      "--method", "gradcam++"])
    assert result.exit_code == 0, result.output
    assert "heat on nodule" in result.output and (out / "report.html").is_file()
    assert json.loads((out / "localization.json").read_text())["method"] == "gradcam++"


def test_faithfulness_and_attributions_are_written(explained):
    loc = json.loads((explained / "localization.json").read_text())
    faith = loc["faithfulness"]
    assert {"gradcam", "occlusion"} <= set(faith) and len(faith["fractions"]) == len(faith["random_curve"])
    for name in ("gradcam", "occlusion"):
        f = faith[name]
        assert f["n"] == 3 and f["ci"][0] <= f["area_between_random"] <= f["ci"][1] and f["verdict"]
    checked = [r for r in loc["per_sample"] if "deletion_area_occlusion" in r]
    assert len(checked) == 3
    assert all(r["reasons"] and (explained / r["waterfall"]).is_file() for r in loc["per_sample"])
    assert "attributions.csv" in {p.name for p in explained.iterdir()}
    page = (explained / "report.html").read_text()
    assert "Faithfulness: deletion test" in page and "Why this answer" in page
