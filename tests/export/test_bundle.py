"""`ctnodule export` on the phantom: the bundle reproduces the torch run, describes itself, and a bundle
that was tampered with or comes from a newer format is refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctnodule.cli import main
from ctnodule.data.dataset import SliceDataset
from ctnodule.errors import RunError
from ctnodule.export.bundle import export_bundle
from ctnodule.models.descriptors import DESCRIPTOR_NAMES
from ctnodule.predict.apply import predict_files
from ctnodule.predict.bundle import METADATA, load_bundle
from ctnodule.predict.run import load_run
from ctnodule.recipe import load_preset
from ctnodule.workflow import train_and_report


def test_bundle_reproduces_the_torch_run(phantom_default_run, phantom_bundle, phantom):
    predictor = load_run(phantom_default_run)
    bundle = load_bundle(phantom_bundle)
    ds = SliceDataset(phantom)
    slices = predictor.load_slices(ds)
    expected = predictor.predict_proba(slices)
    got = bundle.predict_proba(slices, workers=1)
    assert got.shape == expected.shape == (len(slices), 2)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    assert (got.argmax(1) == expected.argmax(1)).all()
    # reading inside 2 worker processes gives the same numbers
    np.testing.assert_allclose(bundle.predict_dataset(ds, workers=2), got, atol=1e-12, rtol=0)


def test_predict_command_takes_a_run_or_a_bundle(phantom_default_run, phantom_bundle, phantom, tmp_path):
    from_run = predict_files(phantom_default_run, [phantom], tmp_path / "run.csv")
    main(["predict", str(phantom_bundle), str(phantom), "--out", str(tmp_path / "bundle.csv")])
    from_bundle = pd.read_csv(tmp_path / "bundle.csv")
    assert list(from_bundle["sample_id"]) == list(from_run["sample_id"])
    assert list(from_bundle["predicted"]) == list(from_run["predicted"])
    cols = [c for c in from_run if c.startswith("proba_")]
    np.testing.assert_allclose(from_bundle[cols].to_numpy(), from_run[cols].to_numpy(), atol=1e-4, rtol=0)


def test_metadata_describes_inputs_outputs_training_and_files(phantom_bundle, phantom_default_run):
    meta = json.loads((phantom_bundle / METADATA).read_text())
    assert meta["bundle_format"] == 1
    assert meta["inputs"]["slice"]["units"] == "HU"
    assert meta["inputs"]["network.image"]["shape"] == ["batch", 3, 64, 64]
    assert meta["outputs"]["probabilities"]["class_names"] == load_run(phantom_default_run).class_names
    assert meta["training_data"]["n_samples"] == len(SliceDataset(Path(meta["training_data"]["data"])).view("nodule"))
    assert set(meta["metrics"]["ci95"]) and "roc_auc" in meta["metrics"]["values"]
    listed = set(meta["files"])
    on_disk = {p.relative_to(phantom_bundle).as_posix() for p in phantom_bundle.rglob("*") if p.is_file()}
    assert listed == on_disk - {METADATA}
    assert {"network.onnx", "head.json", "pipeline.yaml", "model_card/report.html"} <= listed
    head = json.loads((phantom_bundle / "head.json").read_text())  # plain numbers, no pickles
    assert head["kind"] == "logistic_regression" and head["tabular"]["names"] == DESCRIPTOR_NAMES


@pytest.mark.parametrize("damage", ["missing", "altered"])
def test_a_missing_or_altered_file_is_refused(phantom_bundle, tmp_path, damage, capsys):
    copy = tmp_path / "bundle"
    shutil.copytree(phantom_bundle, copy)
    if damage == "missing":
        (copy / "head.json").unlink()
    else:
        raw = bytearray((copy / "network.onnx").read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        (copy / "network.onnx").write_bytes(bytes(raw))
    with pytest.raises(RunError, match="missing" if damage == "missing" else "checksum"):
        load_bundle(copy)
    with pytest.raises(SystemExit) as exc:
        main(["predict", str(copy), str(tmp_path), "--out", str(tmp_path / "p.csv")])
    assert exc.value.code == 3  # a CTNoduleError (cli.py: exit codes)
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "re-export" in err and len(err.splitlines()) == 1


def test_a_newer_bundle_format_is_refused(phantom_bundle, tmp_path):
    copy = tmp_path / "bundle"
    shutil.copytree(phantom_bundle, copy)
    meta = json.loads((copy / METADATA).read_text())
    meta["bundle_format"] += 1
    (copy / METADATA).write_text(json.dumps(meta))
    with pytest.raises(RunError, match="newer than this ctnodule reads"):
        load_bundle(copy)


def test_fast_preset_exports_without_a_network(phantom, tmp_path, monkeypatch):
    monkeypatch.setenv("CTNODULE_CACHE", str(tmp_path / "cache"))
    train_and_report(phantom, tmp_path / "fast", load_preset("fast", folds=2), log=lambda m: None)
    bundle = load_bundle(export_bundle(tmp_path / "fast", tmp_path / "bundle"))
    assert bundle.session is None and not (tmp_path / "bundle" / "network.onnx").exists()
    predictor = load_run(tmp_path / "fast")
    slices = predictor.load_slices(SliceDataset(phantom))
    got = bundle.predict_proba(slices, workers=1)  # the 2.5D stacks, as the run reads them
    np.testing.assert_allclose(got, predictor.predict_proba(slices), atol=1e-4, rtol=0)
    # reading a dataset, the bundle reads the slices alone (its descriptors use only the stack's centre,
    # which is the slice): the same numbers
    assert slices[0].array.ndim == 3 and bundle.reads == "grey"
    assert bundle.metadata["inputs"]["slice"]["shape"] == ["H", "W"]
    np.testing.assert_array_equal(bundle.predict_dataset(SliceDataset(phantom, validate=False), workers=2), got)


def test_export_refuses_an_existing_folder_and_other_heads(phantom_default_run, phantom_bundle, phantom, tmp_path,
                                                           monkeypatch):
    from ctnodule.errors import CTNoduleError

    with pytest.raises(CTNoduleError, match="--force"):
        export_bundle(phantom_default_run, phantom_bundle)
    monkeypatch.setenv("CTNODULE_CACHE", str(tmp_path / "cache"))
    run = tmp_path / "mlp"
    cfg = load_preset("default", segmenter="classical", backbone="resnet18", weights="none", head="mlp", folds=2, epochs=1, tta=False)
    train_and_report(phantom, run, cfg, log=lambda m: None)
    with pytest.raises(RunError, match="logistic-regression"):
        export_bundle(run, tmp_path / "b")
    assert not (tmp_path / "b").exists()

