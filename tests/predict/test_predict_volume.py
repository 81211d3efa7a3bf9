"""`predict` on a whole CT (`predict.volume` + `explain.ct`; a phantom written as DICOM): locations,
automatic masks, --mask, refusals.

A tiny mask-using run (descriptors) trained on the phantom checks the machinery, not accuracy
(bench/bench_segment.py and bench/bench_auto_masks.py measure that on the real data)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctnodule.cli import main
from ctnodule.data.locations import write_candidates
from ctnodule.data.phantom import PhantomPatient, place_nodules, render_volume
from ctnodule.data.series import write_series
from ctnodule.errors import DataError
from ctnodule.explain.ct import predict_ct as predict_volume
from ctnodule.predict.apply import predict_files
from ctnodule.recipe import load_preset
from ctnodule.workflow import train_and_report as train

SPACING, THICKNESS = 0.7, 1.25


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


@pytest.fixture(scope="module")
def mask_run(phantom, tmp_path_factory, monkeypatch_module) -> Path:
    monkeypatch_module.setenv("CTNODULE_CACHE", str(tmp_path_factory.mktemp("cache")))  # never ~/.cache
    out = tmp_path_factory.mktemp("runs") / "descriptors"
    cfg = load_preset("default", backbone="resnet18", weights="none", folds=2, epochs=1, tta=False,
                      tabular="descriptors", head="mlp", freeze_backbone=True, segmenter="classical")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        train(phantom, out, cfg, log=lambda m: None)
    return out


@pytest.fixture(scope="module")
def learned_run(phantom, tmp_path_factory, monkeypatch_module) -> Path:
    """The same tiny run with `segmenter: learned` (a U-Net per fold and one for the final model; 40 epochs
    outline a phantom nodule, see tests/preprocess/test_segnet.py)."""
    monkeypatch_module.setenv("CTNODULE_CACHE", str(tmp_path_factory.mktemp("cache")))
    out = tmp_path_factory.mktemp("runs") / "learned"
    cfg = load_preset("default", backbone="resnet18", weights="none", folds=2, epochs=1, tta=False,
                      tabular="descriptors", head="mlp", freeze_backbone=True, segmenter="learned",
                      segmenter_epochs=40)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        train(phantom, out, cfg, log=lambda m: None)
    return out


@pytest.fixture(scope="module")
def ct(tmp_path_factory):
    """A DICOM series with two nodules 8 mm apart in z, their world centres and the label volume."""
    rng = np.random.default_rng(5)
    patient = PhantomPatient(rng, SPACING, [])
    a, b = place_nodules(rng, patient, [4, 5])
    b = type(b)(**{**b.__dict__, "centre": (b.centre[0], b.centre[1], a.centre[2] + 8.0)})
    patient.nodules = [a, b]
    z0 = a.centre[2] - 16 * THICKNESS
    hu, labels = render_volume(patient, z0, 40, THICKNESS)
    folder = tmp_path_factory.mktemp("ct") / "series"
    origin = (-256 * SPACING, -256 * SPACING, z0)
    write_series(folder, hu, (SPACING, SPACING, THICKNESS), origin, series_uid="1.2.826.0.1")
    centres = [(s.centre[1], s.centre[0], s.centre[2]) for s in (a, b)]  # (x, y, z) world mm
    return folder, centres, [a, b], labels, origin


def test_candidates_segment_and_predict_each_nodule(mask_run, ct, tmp_path):
    folder, centres, _, labels, _ = ct
    write_candidates(tmp_path / "cand.csv", "1.2.826.0.1", centres)
    out = predict_volume(mask_run, folder, tmp_path / "p.csv", candidates=tmp_path / "cand.csv")
    assert list(out["sample_id"]) == ["cand1", "cand2"] and set(out["mask"]) == {"auto"}
    assert set(out["segmenter"]) == {"classical"}  # a run trained without a learned segmenter
    assert np.allclose(out[["x_mm", "y_mm", "z_mm"]].to_numpy(), centres, atol=0.01)
    for n, diameter in enumerate(out["diameter_mm"], start=1):  # vs the drawn mask's largest section
        drawn = 2 * np.sqrt((labels == n).sum(axis=(1, 2)).max() * SPACING**2 / np.pi)
        assert diameter == pytest.approx(drawn, rel=0.2)
    probas = out.filter(like="proba_").to_numpy()
    assert np.allclose(probas.sum(axis=1), 1, atol=1e-5)
    assert all(Path(p).is_file() for p in out["png"])
    assert pd.read_csv(tmp_path / "p.csv")["sample_id"].tolist() == ["cand1", "cand2"]
    # the same point given as --at gives the same answer
    one = predict_volume(mask_run, folder, tmp_path / "q.csv", at=[",".join(map(str, centres[1]))])
    assert np.allclose(one.filter(like="proba_").to_numpy(), probas[1:], atol=1e-6)


def test_explain_states_the_maps_grid_and_when_it_is_empty(mask_run, ct, tmp_path):
    import cv2

    from ctnodule.explain.core import explain_slices
    from ctnodule.explain.ct import cam_note
    from ctnodule.predict.run import load_run
    from ctnodule.predict.volume import predict_volume as volume_samples

    folder, centres, _, _, _ = ct
    at = [",".join(map(str, c)) for c in centres]
    out = predict_volume(mask_run, folder, tmp_path / "p.csv", at=at, method="gradcam")
    _, slices = volume_samples(load_run(mask_run), folder, at=at)
    maps = explain_slices(load_run(mask_run), slices)
    assert out["cam_empty"].tolist() == [bool(m.max() <= 0) for m in maps]
    rows, cols = (int(v) for v in out["cam_grid"].iloc[0].split("x"))
    assert rows >= 1 and cols >= 1
    saved = pd.read_csv(tmp_path / "p.csv")
    assert {"cam_grid", "cam_empty"} <= set(saved.columns)
    png = cv2.imread(out["png"].iloc[0])
    assert png.shape[0] > 256 + 2 * 22  # the caption and the map's note above the panels
    assert "EMPTY" in cam_note({"cam_grid": "2x2", "cam_empty": True, "predicted": "x"})
    assert "coarse" in cam_note({"cam_grid": "2x2", "cam_empty": False})
    assert cam_note({"cam_grid": "8x8", "cam_empty": False}) == "Grad-CAM (8x8 cells)"


def test_given_mask_overrides_segmentation(mask_run, ct, tmp_path):
    import nibabel as nib

    folder, centres, _, labels, origin = ct
    affine = np.diag([-SPACING, -SPACING, THICKNESS, 1.0])  # RAS
    affine[:3, 3] = [-origin[0], -origin[1], origin[2]]
    nib.save(nib.Nifti1Image(np.transpose(labels == 2, (2, 1, 0)).astype(np.uint8), affine), tmp_path / "m.nii.gz")
    out = predict_volume(mask_run, folder, tmp_path / "p.csv", mask=tmp_path / "m.nii.gz")
    assert list(out["mask"]) == ["given"] and list(out["segmenter"]) == ["given"] and len(out) == 1
    areas = (labels == 2).sum(axis=(1, 2))
    assert out["diameter_mm"].iloc[0] == pytest.approx(2 * np.sqrt(areas.max() * SPACING**2 / np.pi), abs=1e-3)
    assert out["z_mm"].iloc[0] == pytest.approx(centres[1][2], abs=THICKNESS)


def test_a_mask_using_model_refuses_to_guess(mask_run, ct, phantom, tmp_path):
    from ctnodule.data.dataset import SliceDataset

    folder, _, _, _, _ = ct
    with pytest.raises(DataError, match="no nodule location given"):
        predict_volume(mask_run, folder, tmp_path / "p.csv")
    row = SliceDataset(phantom).view("nodule").frame.iloc[0]
    with pytest.raises(DataError, match="descriptors measured from its mask.*--mask"):
        predict_files(mask_run, [phantom / row["path"]], tmp_path / "p.csv")
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_a_run_with_a_learned_segmenter_outlines_with_it_and_says_so(learned_run, ct, tmp_path):
    from ctnodule.models.fitted import FittedModel
    from ctnodule.runfolder import RunPaths

    paths = RunPaths(learned_run)
    for path in (paths.fold_model(0), paths.fold_model(1), paths.model):  # one per fold, one for the final model
        assert FittedModel.load(path)[0].segmenter is not None
    folder, centres, _, labels, _ = ct
    at = [",".join(map(str, c)) for c in centres]
    out = predict_volume(learned_run, folder, tmp_path / "p.csv", at=at)
    assert list(out["segmenter"]) == ["learned+classical"] * 2 and set(out["mask"]) == {"auto"}
    assert pd.read_csv(tmp_path / "p.csv")["segmenter"].tolist() == ["learned+classical"] * 2
    for n, k in enumerate(out["slice_index"], start=1):  # the chosen slice crosses the drawn nodule
        assert (labels[k] == n).any()


def test_a_learned_segmenter_run_reports_the_mean_over_both_outlines(learned_run, ct):
    from ctnodule.data.volume import read_volume
    from ctnodule.predict.run import load_run
    from ctnodule.predict.volume import judge_outlines, outlines_at

    predictor = load_run(learned_run)
    folder, centres, _, _, _ = ct
    volume = read_volume(folder)
    sp = np.asarray(volume.spacing, float)[::-1]
    outlines = outlines_at(predictor, volume.hu, sp, volume.to_voxel(centres[0])[::-1])
    assert [o.method for o in outlines] == ["learned", "classical"]
    assert not np.array_equal(outlines[0].mask, outlines[1].mask)  # the learned outline redrew a slice
    both, [shown] = judge_outlines(predictor, volume.hu, sp, [outlines], ["n"])
    each, samples = judge_outlines(predictor, volume.hu, sp, [[o] for o in outlines], ["a", "b"])
    assert np.allclose(both[0], each.mean(axis=0))
    assert shown.meta["slice_index"] == samples[0].meta["slice_index"]  # the learned outline is the one drawn
    assert np.array_equal(shown.mask, samples[0].mask)


def test_a_checkpoint_from_before_learned_segmenters_predicts_with_the_classical_one(mask_run, ct, tmp_path):
    import shutil

    import torch

    from ctnodule.runfolder import RunPaths, read_checkpoint

    old = tmp_path / "old-run"
    shutil.copytree(mask_run, old)
    blob = read_checkpoint(RunPaths(old).model)
    del blob["segmenter"]  # the checkpoint form written before the field existed
    torch.save(blob, RunPaths(old).model)
    folder, centres, _, _, _ = ct
    at = [",".join(map(str, centres[0]))]
    before = predict_volume(old, folder, tmp_path / "old.csv", at=at)
    now = predict_volume(mask_run, folder, tmp_path / "now.csv", at=at)
    assert list(before["segmenter"]) == ["classical"]
    assert np.allclose(before.filter(like="proba_").to_numpy(), now.filter(like="proba_").to_numpy())


@pytest.mark.parametrize("at, message", [
    ("0,0,-5000", "outside the volume"),
    ("-170,-170,{z}", "in air"),
])
def test_bad_locations_are_one_clear_error_and_write_nothing(mask_run, ct, tmp_path, capsys, at, message):
    folder, centres, _, _, _ = ct
    with pytest.raises(SystemExit) as info:
        main(["predict", str(mask_run), str(folder), f"--at={at.format(z=centres[0][2])}",
              "--out", str(tmp_path / "p.csv")])
    assert info.value.code == 3  # bad data
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_cli_voxel_location(mask_run, ct, tmp_path, capsys):
    folder, centres, _, _, origin = ct
    x, y, z = centres[0]
    ijk = f"{(x - origin[0]) / SPACING:.1f},{(y - origin[1]) / SPACING:.1f},{(z - origin[2]) / THICKNESS:.1f}"
    main(["predict", str(mask_run), str(folder), "--at-voxel", ijk, "--out", str(tmp_path / "p.csv")])
    out = pd.read_csv(tmp_path / "p.csv")
    assert np.allclose(out[["x_mm", "y_mm", "z_mm"]].to_numpy()[0], centres[0], atol=0.01)
    assert "1 prediction(s)" in capsys.readouterr().out
