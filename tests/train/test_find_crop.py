"""Find-then-classify runs (`find: found`): full slices in, patient-grouped folds, a run folder that predicts
full slices by itself, and predictions that never depend on the manifest's mask or nodule position."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ctnodule.data.dataset import SliceDataset
from ctnodule.errors import ConfigError, DataError
from ctnodule.predict import load_run
from ctnodule.preprocess.find import without_truth
from ctnodule.recipe import default_preset, load_preset
from ctnodule.train.api import train


@pytest.fixture(scope="module")
def find_run(phantom, tmp_path_factory):
    """The find-crop recipe with the blob-order finder and the descriptors-only nodule model (no image
    network: fast), 2 folds."""
    out = tmp_path_factory.mktemp("runs") / "find"
    cfg = load_preset("find-crop", folds=2, backbone="none", head_params={"C": 1.0}, tta=False, find_rank="blob",
                      find_top=1)
    train(phantom, out, cfg, log=lambda m: None)
    return out


def test_full_view_default_preset_is_find_crop():
    assert default_preset("full") == "find-crop"
    assert default_preset("nodule") == "default"
    with pytest.raises(ConfigError, match="view: full"):
        load_preset("find-crop", view="nodule")
    with pytest.raises(ConfigError, match="find_top"):  # the blob order has no scores to weigh candidates by
        load_preset("find-crop", find_rank="blob", find_top=3)


def test_no_patient_in_two_folds(find_run):
    folds = [pd.read_csv(p) for p in sorted((find_run / "splits").glob("fold-*.csv"))]
    assert len(folds) == 2
    val = [set(f.loc[f["split"] == "val", "patient_id"]) if "split" in f else set(f["patient_id"]) for f in folds]
    assert not val[0] & val[1]
    oof = pd.read_csv(find_run / "oof_predictions.csv")
    assert oof.groupby("patient_id")["fold"].nunique().max() == 1


def test_run_folder_predicts_full_slices_and_records_what_it_found(find_run, phantom):
    found = pd.read_csv(find_run / "found.csv")
    assert found["found"].all()
    predictor = load_run(find_run)
    slices = predictor.load_slices(SliceDataset(phantom))[:6]
    assert all(s.array.shape[-1] == 512 for s in slices)  # full slices go in
    proba = predictor.predict_proba(slices)
    assert proba.shape == (6, 2) and np.allclose(proba.sum(1), 1)
    assert found.set_index("sample_id").loc[[s.meta["sample_id"] for s in slices], "found_r"].notna().all()


def assert_blind_to_truth(predictor, slices) -> np.ndarray:
    """The predictions of `slices` (returned) stay exactly the same with the manifest's mask and true
    position removed, or moved 100 px away: a find-then-classify run never reads them."""
    blind = [s.replace(mask=None, meta=without_truth(s.meta)) for s in slices]
    moved = [s.replace(mask=np.roll(np.asarray(s.mask), 100, axis=1),
                       meta={**s.meta, "centre_r": 1.0, "centre_c": 1.0, "mask_diameter_mm": 99.0}) for s in slices]
    reference = predictor.predict_proba(slices)
    np.testing.assert_array_equal(predictor.predict_proba(blind), reference)
    np.testing.assert_array_equal(predictor.predict_proba(moved), reference)
    return reference


def test_predictions_never_read_the_manifest_mask_or_position(find_run, phantom):
    predictor = load_run(find_run)
    slices = predictor.load_slices(SliceDataset(phantom))[:6]
    assert_blind_to_truth(predictor, slices)


def test_slice_without_a_nodule_is_a_reported_error(find_run):
    predictor = load_run(find_run)
    from ctnodule.data.slice import Slice

    img = np.full((3, 200, 200), -1000, np.int16)
    img[:, 10:190, 10:190] = 40
    img[:, 40:160, 30:95] = -850
    img[:, 40:160, 105:170] = -850
    with pytest.raises(DataError, match="no nodule found on 1 of 1.*'empty'"):
        predictor.predict_proba([Slice(img, (1.0, 1.0), {"sample_id": "empty"})])


def test_predict_files_reports_where_the_nodule_was_found(find_run, phantom, tmp_path):
    from ctnodule.predict.apply import predict_files

    frame = predict_files(find_run, [phantom], tmp_path / "p.csv")
    assert {"found_r", "found_c", "found_diameter_mm"} <= set(frame.columns)
    assert frame["found_r"].between(0, 511).all() and len(frame) == len(SliceDataset(phantom).view("full"))


@pytest.fixture(scope="module")
def learned_run(phantom, tmp_path_factory):
    """`find_run` with the preset's learned candidate ranking (a ranker fitted per fold and for the final
    model), its soft decision over the ranker's best candidates, and its learned segmenter (fitted on the
    true crops; every candidate judged on both outlines)."""
    out = tmp_path_factory.mktemp("runs") / "learned"
    cfg = load_preset("find-crop", folds=2, backbone="none", head_params={"C": 1.0}, tta=False, segmenter_epochs=20)
    assert cfg.find_rank == "learned" and cfg.find_top > 1 and cfg.segmenter == "learned"
    train(phantom, out, cfg, log=lambda m: None)
    return out


def test_learned_ranker_travels_in_the_checkpoint_and_never_reads_the_mask(learned_run, phantom):
    from ctnodule.models.fitted import FittedModel
    from ctnodule.preprocess.rank import CandidateRanker
    from ctnodule.preprocess.segnet import LearnedSegmenter

    model, _ = FittedModel.load(learned_run / "model.pt")
    assert isinstance(model.finder["ranker"], CandidateRanker) and model.finder["ranker"].model is not None
    assert isinstance(model.segmenter, LearnedSegmenter)
    found = pd.read_csv(learned_run / "found.csv")  # each slice's pick by the fold that held it out
    assert found["found"].all() and found["found_r"].between(0, 511).all()
    predictor = load_run(learned_run)
    slices = predictor.load_slices(SliceDataset(phantom))[:4]
    reference = assert_blind_to_truth(predictor, slices)
    assert reference.shape == (4, 2) and np.allclose(reference.sum(1), 1)


def test_soft_run_decides_on_the_rankers_best_candidates_weighted_by_its_scores(learned_run, phantom):
    from ctnodule.preprocess.find import RUNNERS_UP_KEY, WEIGHT_KEY

    predictor = load_run(learned_run)
    fm = predictor.fold_model
    slices = predictor.load_slices(SliceDataset(phantom))[:4]
    proba = predictor.predict_proba(slices)
    favourites = predictor.found(slices)
    twice = 0
    for p, f in zip(proba, favourites):
        group = [f, *f.meta[RUNNERS_UP_KEY]]
        points = [(g.meta["found_r"], g.meta["found_c"]) for g in group]
        assert len(set(points)) == fm.cfg.find_top  # the ranker's best, each on one or both outlines
        twice += len(points) - len(set(points))
        weights = np.array([g.meta[WEIGHT_KEY] for g in group])
        assert weights.sum() == pytest.approx(1.0)
        each = fm.proba_from(fm.images(group), fm.extra(group))
        # float32 network outputs of differently composed batches: equal to ~1e-7, not bit for bit
        np.testing.assert_allclose(p, weights @ each, rtol=1e-5)
    assert twice > 0  # the learned segmenter outlined candidates too
    # the favourite's own crop alone decides otherwise: the runners-up (and the second outlines) count
    alone = fm.proba_from(fm.images(favourites), fm.extra(favourites))
    assert not np.allclose(alone, proba)
    oof = pd.read_csv(learned_run / "oof_predictions.csv")
    assert np.allclose(oof.filter(like="proba_").sum(axis=1), 1)


def test_training_uses_only_the_finds_that_lie_in_the_nodule(phantom, tmp_path):
    """A training slice whose find misses its nodule would teach the nodule's label on something else: its crop
    is left out (the true mask chooses training rows only; held-out slices are judged whatever was found)."""
    from ctnodule.preprocess.inputs import load_slice
    from ctnodule.train.find_crop import find_inputs, train_found_fold
    from ctnodule.vocab import task_labels

    ds = SliceDataset(phantom).view("full")
    y_all = task_labels(ds.frame, "binary")
    rows = np.column_stack([np.flatnonzero(y_all == 0)[:8], np.flatnonzero(y_all == 1)[:8]]).ravel()  # both classes
    n = len(rows)
    frame = ds.frame.iloc[rows].reset_index(drop=True)
    slices = [load_slice(ds, int(i), "context") for i in rows]
    cfg = load_preset("find-crop", backbone="none", head_params={"C": 1.0}, tta=False, find_rank="blob", find_top=1,
                      segmenter="classical")
    inputs = find_inputs(cfg, slices, lambda m: None)
    for i, (s, f) in enumerate(zip(slices, inputs.found)):  # every find placed in its nodule but the first one's
        r, c = np.argwhere(np.asarray(s.mask) > 0)[0] if i else (0, 0)  # 0, 0: the slice's corner, no nodule
        inputs.found[i] = f.replace(meta={**f.meta, "found_r": int(r), "found_c": int(c)})
    assert [inputs.on_nodule(i, f) for i, f in enumerate(inputs.found)] == [False] + [True] * (n - 1)
    logs: list[str] = []
    _, _, proba = train_found_fold(cfg, inputs, frame, task_labels(frame, "binary"), np.arange(n - 4), 0,
                                   tmp_path / "m.pt", False, logs.append, np.arange(n - 4, n))
    assert any(f"trained on the {n - 5} of {n - 4} training slices" in m for m in logs), logs
    assert proba.shape == (4, 2) and np.allclose(proba.sum(1), 1)


def test_no_find_in_the_nodule_of_a_class_is_a_reported_error(phantom, tmp_path):
    from ctnodule.preprocess.inputs import load_slice
    from ctnodule.train.find_crop import find_inputs, train_found_fold
    from ctnodule.vocab import task_labels

    ds = SliceDataset(phantom).view("full")
    y_all = task_labels(ds.frame, "binary")
    rows = np.column_stack([np.flatnonzero(y_all == 0)[:3], np.flatnonzero(y_all == 1)[:3]]).ravel()
    frame = ds.frame.iloc[rows].reset_index(drop=True)
    slices = [load_slice(ds, int(i), "context") for i in rows]
    cfg = load_preset("find-crop", backbone="none", head_params={"C": 1.0}, tta=False, find_rank="blob", find_top=1,
                      segmenter="classical")
    inputs = find_inputs(cfg, slices, lambda m: None)
    y = task_labels(frame, "binary")
    for i, (s, f) in enumerate(zip(slices, inputs.found)):  # the malignant ones' finds all off their nodules
        r, c = np.argwhere(np.asarray(s.mask) > 0)[0] if y[i] == 0 else (0, 0)
        inputs.found[i] = f.replace(meta={**f.meta, "found_r": int(r), "found_c": int(c)})
    with pytest.raises(DataError, match=r"fold 0: the finds lie in the nodule on 3 of 6 training slices, none of "
                                        r"class \['malignant \(4-5\)'\].*find: truth"):
        train_found_fold(cfg, inputs, frame, y, np.arange(6), 0, tmp_path / "m.pt", False, lambda m: None)
