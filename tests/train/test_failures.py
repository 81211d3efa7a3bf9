"""Nothing lost, nothing silent (issue 11): what train, evaluate and predict do with bad options, bad
inputs and interruptions. Each test reproduces a fault the issue found: an old run deleted by `--force`
before anything was checked, an evaluation written over a run, a CSV overwritten without a word, a
NRRD without spacing read as 1 mm/px, a resumed run that did not match an uninterrupted one, ...
Synthetic phantom + tiny random-init backbones: this checks behaviour, not accuracy."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nrrd
import numpy as np
import pandas as pd
import pytest

from ctnodule.data.dataset import SliceDataset
from ctnodule.data.io import write_nrrd
from ctnodule.errors import ConfigError, DataError, RunError
from ctnodule.evaluate.run import evaluate_run
from ctnodule.predict.apply import predict_files
from ctnodule.runfolder import RunPaths
from ctnodule.workflow import train_and_report as train

from .recipes import QUIET, tiny_frozen_cfg


@pytest.fixture(scope="module")
def run(phantom, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "frozen"
    train(phantom, out, tiny_frozen_cfg(), **QUIET)
    return out


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _leftovers(parent: Path, name: str) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f".{name}."))


# 1. train --force replaces the old run only once the new one is complete ----------------------------------

def test_force_keeps_the_old_run_when_the_new_one_fails(run, phantom, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(run, old)
    before = _snapshot(old)
    with pytest.raises(DataError, match="no 'full'-view samples"):
        only_nodules = _subset(phantom, tmp_path / "nod", lambda f: f["view"] == "nodule")
        train(only_nodules, old, tiny_frozen_cfg(view="full"), force=True, **QUIET)
    assert _snapshot(old) == before
    assert _leftovers(tmp_path, "old") == []


def test_force_keeps_the_old_run_on_ctrl_c(run, phantom, tmp_path, monkeypatch):
    from ctnodule.train import api

    old = tmp_path / "old"
    shutil.copytree(run, old)
    before = _snapshot(old)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(api, "train_fold", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(phantom, old, tiny_frozen_cfg(), force=True, **QUIET)
    assert _snapshot(old) == before
    assert _leftovers(tmp_path, "old") == []


def test_force_replaces_the_run_once_complete(run, phantom, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(run, old)
    (old / "stale.txt").write_text("from the old run")
    train(phantom, old, tiny_frozen_cfg(epochs=1), force=True, **QUIET)
    assert not (old / "stale.txt").exists()
    paths = RunPaths(old)
    assert all(f.is_file() for f in (paths.config, paths.model, paths.metrics, paths.report, paths.oof))
    assert ".tmp-" not in paths.config.read_text()  # the temporary build folder is not recorded
    assert _leftovers(tmp_path, "old") == []


# 6. bad options and outputs: one clear error before the run folder exists ---------------------------------

@pytest.mark.parametrize(("option", "match"), [
    ({"backbone": "resnet1"}, "resnet1"),
    ({"weights": "/no/such/weights.pt"}, "no such file"),
    ({"imbalance": "smot"}, "smot"),
    ({"device": "tpu"}, "--device 'tpu'"),
])
def test_bad_options_fail_before_the_run_folder_exists(phantom, tmp_path, option, match):
    out = tmp_path / "r"
    with pytest.raises(ConfigError, match=match):
        train(phantom, out, tiny_frozen_cfg(**option), **QUIET)
    assert not out.exists()


def test_unwritable_outputs_fail_before_anything_is_written(phantom, tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    with pytest.raises(ConfigError, match="file"):
        train(phantom, blocker / "run", tiny_frozen_cfg(), **QUIET)
    with pytest.raises(ConfigError, match="not writable"):
        train(phantom, Path("/proc/ctnodule-run"), tiny_frozen_cfg(), **QUIET)
    monkeypatch.setenv("CTNODULE_CACHE", "/proc/ctnodule-cache")  # read-only for everyone, root included
    with pytest.raises(ConfigError, match="CTNODULE_CACHE"):
        train(phantom, tmp_path / "r", tiny_frozen_cfg(), **QUIET)
    assert not (tmp_path / "r").exists()


def test_garbage_config_is_a_one_line_error_for_resume_predict_evaluate(run, phantom, tmp_path):
    for body in ("- a\n- list\n", "{not: [valid yaml", "\x00\x01binary"):
        bad = tmp_path / "bad"
        shutil.rmtree(bad, ignore_errors=True)
        shutil.copytree(run, bad)
        (bad / "config.yaml").write_text(body)
        with pytest.raises(RunError, match="config.yaml"):
            train(phantom, bad, tiny_frozen_cfg(), resume=True, **QUIET)
        with pytest.raises(RunError, match="config.yaml"):
            predict_files(bad, [phantom], tmp_path / "p.csv")
        with pytest.raises(RunError, match="config.yaml"):
            evaluate_run(bad, phantom, tmp_path / "eval", n_boot=10)
        assert not (tmp_path / "p.csv").exists() and not (tmp_path / "eval").exists()


# 2. evaluate and predict never overwrite without --force, never write into a run -------------------------

def test_evaluate_refuses_the_run_folder_and_existing_folders(run, phantom, tmp_path):
    before = _snapshot(run)
    for force in (False, True):
        with pytest.raises(ConfigError, match="run folder"):
            evaluate_run(run, phantom, run, n_boot=10, force=force)
    assert _snapshot(run) == before
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="--force"):
        evaluate_run(run, phantom, other, n_boot=10)
    assert (other / "keep.txt").read_text() == "mine"


def test_predict_refuses_to_overwrite_a_csv_or_write_to_a_folder(run, phantom, tmp_path):
    out = tmp_path / "p.csv"
    out.write_text("my earlier predictions\n")
    with pytest.raises(ConfigError, match="--force"):
        predict_files(run, [phantom], out)
    assert out.read_text() == "my earlier predictions\n"
    frame = predict_files(run, [phantom], out, force=True)
    assert len(pd.read_csv(out)) == len(frame) > 0
    with pytest.raises(ConfigError, match="folder"):
        predict_files(run, [phantom], tmp_path, force=True)


# 5. evaluate says when the data shares patients with the run's training data -----------------------------

def test_evaluate_reports_patients_seen_in_training(run, phantom, tmp_path):
    m = evaluate_run(run, phantom, tmp_path / "eval", n_boot=10)
    patients = set(SliceDataset(phantom).view("nodule").frame["patient_id"].astype(str))
    seen = m["patients_seen_in_training"]
    assert seen["count"] == len(patients) and sorted(seen["ids"]) == sorted(patients)
    stored = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert stored["patients_seen_in_training"]["count"] == len(patients)
    page = (tmp_path / "eval" / "report.html").read_text()
    assert "seen in training" in page and str(len(patients)) in page


def test_evaluate_on_unseen_patients_reports_none(run, phantom, tmp_path):
    # the run's splits name its patients; a dataset whose patient ids are new reports 0
    renamed = _subset(phantom, tmp_path / "new", lambda f: f["view"] == "nodule",
                      edit=lambda f: f.assign(patient_id="NEW-" + f["patient_id"].astype(str)))
    m = evaluate_run(run, renamed, tmp_path / "eval", n_boot=10)
    assert m["patients_seen_in_training"] == {"count": 0, "ids": []}


# 3 + 4. inputs predict refuses instead of guessing ------------------------------------------------------

def test_predict_refuses_nrrd_without_spacing_unless_given(run, phantom, tmp_path):
    s = SliceDataset(phantom).view("nodule")[0]
    path = tmp_path / "nospacing.nrrd"
    nrrd.write(str(path), s.array, index_order="C")  # no spacings header
    with pytest.raises(DataError, match="--spacing"):
        predict_files(run, [path], tmp_path / "p.csv")
    assert not (tmp_path / "p.csv").exists()
    mask = write_nrrd(tmp_path / "mask.nrrd", s.mask.astype(np.uint8), s.spacing)  # this run measures the nodule
    predict_files(run, [path], tmp_path / "p.csv", spacing=s.spacing[0], masks=[mask])
    given = pd.read_csv(tmp_path / "p.csv")
    write_nrrd(tmp_path / "with.nrrd", s.array, s.spacing)
    header = predict_files(run, [tmp_path / "with.nrrd"], tmp_path / "q.csv", masks=[mask])
    assert np.isclose(given["score"].iloc[0], header["score"].iloc[0], atol=1e-6)


def test_predict_refuses_volumes_and_non_ct_images(run, phantom, tmp_path):
    s = SliceDataset(phantom).view("nodule")[0]
    volume = tmp_path / "volume.nrrd"
    write_nrrd(volume, np.stack([s.array] * 5), (2.5, *s.spacing))
    with pytest.raises(DataError, match="3D volume"):
        predict_files(run, [volume], tmp_path / "p.csv")
    mask = write_nrrd(tmp_path / "mask.nrrd", s.mask.astype(np.uint8), s.spacing)  # this run measures the nodule
    frame = predict_files(run, [volume], tmp_path / "p.csv", allow=("volume",), masks=[mask])
    assert len(frame) == 1
    bad = {"constant.nrrd": np.full((64, 64), -600, np.int16), "zeros.nrrd": np.zeros((64, 64), np.int16),
           "eightbit.nrrd": np.arange(64 * 64).reshape(64, 64) % 256,  # int16 holding 0..255: a screenshot
           "tiny.nrrd": np.array([[40]], np.int16)}
    for name, array in bad.items():
        write_nrrd(tmp_path / name, array.astype(np.int16), s.spacing)
        with pytest.raises(DataError, match=name):
            predict_files(run, [tmp_path / name], tmp_path / "p2.csv")
    assert not (tmp_path / "p2.csv").exists()


# 8. resume: a corrupt fold checkpoint is retrained; a resumed run matches an uninterrupted one -----------

def test_resume_retrains_a_corrupt_fold_checkpoint(run, phantom, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(run, broken)
    paths = RunPaths(broken)
    paths.fold_model(0).write_bytes(b"truncated")
    paths.model.unlink()
    msgs: list[str] = []
    train(phantom, broken, tiny_frozen_cfg(), resume=True, log=msgs.append)
    assert any("fold 0" in m and "corrupt" in m and "retrain" in m for m in msgs), msgs
    assert any("fold 1: done earlier" in m for m in msgs)
    pd.testing.assert_frame_equal(pd.read_csv(RunPaths(run).oof), pd.read_csv(paths.oof))


def test_resume_mid_fold_matches_an_uninterrupted_run(phantom, tmp_path, monkeypatch):
    from ctnodule.train import engine

    cfg = tiny_frozen_cfg(epochs=4, holdout=0.3, patience=10)
    train(phantom, tmp_path / "whole", cfg, **QUIET)
    save = engine._save_state
    calls = {"n": 0}

    def save_then_stop(*args, **kwargs):
        save(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 2:  # Ctrl-C after epoch 2 of the first fold, its checkpoint written
            raise KeyboardInterrupt

    monkeypatch.setattr(engine, "_save_state", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        train(phantom, tmp_path / "cut", cfg, **QUIET)
    monkeypatch.setattr(engine, "_save_state", save)
    msgs: list[str] = []
    train(phantom, tmp_path / "cut", cfg, resume=True, log=msgs.append)
    assert any("resuming after epoch 2" in m for m in msgs), msgs
    for name in ("history.csv", "oof_predictions.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "whole" / name), pd.read_csv(tmp_path / "cut" / name))


def _subset(phantom: Path, dest: Path, keep, edit=None) -> Path:
    frame = pd.read_csv(phantom / "manifest.csv", dtype={"sample_id": str, "patient_id": str})
    dest.mkdir()
    for sub in ("slices", "masks", "context"):
        if (phantom / sub).exists():
            (dest / sub).symlink_to(phantom / sub)
    frame = frame[keep(frame)]
    (edit(frame) if edit else frame).to_csv(dest / "manifest.csv", index=False)
    return dest
