import json

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from ctnodule.data.dataset import SliceDataset
from ctnodule.data.io import read_nifti, read_nrrd
from ctnodule.data.writer import open_dataset
from ctnodule.errors import CTNoduleError
from ctnodule.preprocess import Pipeline, PreprocessConfig, preprocess_dataset
from ctnodule.preprocess.commands import register


def test_preprocess_dataset_writes_a_processed_dataset(small_dataset, tmp_path):
    out = preprocess_dataset(small_dataset, tmp_path / "pre", workers=1)
    ds = SliceDataset(out)  # same manifest format, every file valid
    dropped = pd.read_csv(out / "dropped.csv")
    assert len(ds) + len(dropped) == 33 and set(dropped.columns) >= {"sample_id", "laplacian_variance", "reason"}
    for i in range(len(ds)):
        s = ds[i]
        assert s.array.dtype == np.float32 and 0 <= s.array.min() and s.array.max() <= 1
        if s.meta["view"] == "nodule":
            assert s.array.shape == (64, 64) and s.mask.shape == (64, 64)
            assert s.spacing == pytest.approx((0.7, 0.7), rel=0.03)
            assert ds.context(i).shape == (3, 64, 64)
        else:
            lung, _ = read_nrrd(out / s.meta["lung_mask_path"])  # 256 px at 1.4 mm -> standard 512 px
            assert lung.shape == s.array.shape == (512, 512) and s.spacing == pytest.approx((0.7, 0.7))
    nodule = Pipeline.load(out / "pipeline.yaml", view="nodule")
    assert set(ds.frame.loc[ds.frame["view"] == "nodule", "pipeline_hash"]) == {nodule.hash}
    assert (out / "report.html").is_file() and (out / "figures" / "classes.png").is_file()


def test_output_is_cached_by_input_and_config(small_dataset, tmp_path):
    out = preprocess_dataset(small_dataset, tmp_path / "pre", workers=1, report=False)
    stamp = (out / "manifest.csv").stat().st_mtime_ns
    preprocess_dataset(small_dataset, out, workers=1, report=False)
    assert (out / "manifest.csv").stat().st_mtime_ns == stamp  # same input + config: reused
    seed = PreprocessConfig.seed("nodule")
    with pytest.raises(CTNoduleError, match="--force"):  # another config never silently overwrites
        preprocess_dataset(small_dataset, out, config=seed, workers=1, report=False)
    preprocess_dataset(small_dataset, out, config=seed, force=True, workers=1, report=False)
    assert json.loads((out / "preprocess.json").read_text())["hashes"]["nodule"] == \
        Pipeline.load(out / "pipeline.yaml", view="nodule").hash


def test_fit_on_training_patients_only(small_dataset, tmp_path):
    train = ["P0", "P1", "P2", "P3"]
    out = preprocess_dataset(small_dataset, tmp_path / "pre", fit_on=train, workers=1, report=False)
    pipe = Pipeline.load(out / "pipeline.yaml", view="nodule")
    noise = next(s for s in pipe.steps if s.name == "noise")
    n_train = sum(1 for i in range(30) if f"P{i % 6}" in train)
    assert noise.n_fit_ == n_train
    with pytest.raises(CTNoduleError, match="fit_on"):
        preprocess_dataset(small_dataset, tmp_path / "x", fit_on=["nobody"], workers=1)


def test_cli_command(small_dataset, tmp_path):
    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)  # a second command keeps `preprocess` a named subcommand
    fit_on = tmp_path / "train.csv"
    pd.DataFrame({"patient_id": ["P0", "P1", "P2"]}).to_csv(fit_on, index=False)
    result = CliRunner().invoke(app, ["preprocess", str(small_dataset), "--out", str(tmp_path / "cli"),
                                      "--fit-on", str(fit_on)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "cli" / "manifest.csv").is_file() and "report.html" in result.output


@pytest.mark.realdata
def test_real_voi_nodules(voi_src, tmp_path):
    """Real LIDC VOIs through the default pipeline: 64 px at 0.7 mm/px, the nodule mask kept and centred."""
    meta = pd.read_excel(voi_src / "MetadatabyNoduleMaxVoting.xlsx").head(24)
    with open_dataset(tmp_path / "voi") as w:
        for row in meta.itertuples():
            img = voi_src / "image" / f"{row.patient_id}_R_{row.nodule_id}.nii.gz"
            if not img.exists():
                continue
            a, zooms = read_nifti(img)
            m, _ = read_nifti(voi_src / "nodule_mask" / img.name)
            z = int(np.argmax(m.reshape(-1, m.shape[2]).sum(0)))
            w.add(np.ascontiguousarray(a[:, :, z].T).astype(np.int16), (zooms[1], zooms[0]),
                  sample_id=img.name[:-7], patient_id=row.patient_id, nodule_id=row.nodule_id, view="nodule",
                  malignancy=int(row.Malignancy_value), source="lidc-voi",
                  mask=np.ascontiguousarray(m[:, :, z].T).astype(np.uint8))
    out = SliceDataset(preprocess_dataset(tmp_path / "voi", tmp_path / "pre", workers=1, report=False))
    assert len(out) >= 20
    for s in out:
        assert s.array.shape == (64, 64) and s.spacing == pytest.approx((0.7, 0.7), rel=0.03)
        rows, cols = np.nonzero(s.mask)
        assert abs(rows.mean() - 32) < 6 and abs(cols.mean() - 32) < 6
        assert s.array.std() > 0.05  # real structure survived, not a flat image


def test_phantom_dataset_both_views(phantom, tmp_path):
    """The synthetic phantom importer's output (full + nodule views, masks, context) goes through."""
    full = SliceDataset(phantom)
    src = full.subset(full.frame["patient_id"].isin(sorted(set(full.groups))[:12]).to_numpy())
    out = SliceDataset(preprocess_dataset(src, tmp_path / "pre", report=False))
    dropped = pd.read_csv(tmp_path / "pre" / "dropped.csv")
    assert len(out) + len(dropped) == len(src)
    assert set(out.frame["view"]) == set(src.frame["view"])
    for i in range(0, len(out), 7):
        s = out[i]
        assert s.array.dtype == np.float32 and s.array.shape == ((64, 64) if s.meta["view"] == "nodule" else (512, 512))
        ctx = out.context(i)
        assert ctx is None or ctx.shape[1:] == s.array.shape
