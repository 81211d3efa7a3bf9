"""`import synthetic`: both views per nodule, consistent geometry, all classes, labelled synthetic."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ctnodule.cli import app
from ctnodule.data import SliceDataset
from ctnodule.data.importers import REPORT, import_synthetic
from ctnodule.errors import CTNoduleError


def test_phantom_dataset_has_both_views_and_every_class(phantom):
    ds = SliceDataset(phantom)  # validates every file
    f = ds.frame
    assert set(f["view"]) == {"full", "nodule"}
    assert sorted(f["malignancy"].unique()) == [1, 2, 3, 4, 5]
    assert (f["source"] == "synthetic").all() and (f["synthetic"] == 1).all()
    assert f["patient_id"].str.fullmatch(r"PHANTOM-\d{4}").all()
    per_nodule = f.groupby(["patient_id", "nodule_id"])["view"].apply(sorted)
    assert all(v == ["full", "nodule"] for v in per_nodule)
    assert f.groupby("patient_id")["nodule_id"].nunique().max() > 1  # some patients have several nodules
    report = json.loads((phantom / REPORT).read_text())
    assert report["n_samples"] == len(f) and report["skipped"] == []


def test_full_view_bbox_matches_mask_and_crop_is_the_same_pixels(phantom):
    ds = SliceDataset(phantom, validate=False)
    f = ds.frame
    full = f.index[f["view"] == "full"][0]
    nod = f.index[(f["view"] == "nodule") & (f["nodule_id"] == f.loc[full, "nodule_id"])
                  & (f["patient_id"] == f.loc[full, "patient_id"])][0]
    a, b = ds[full], ds[nod]
    assert a.shape == (512, 512) and a.array.dtype == np.int16
    rows, cols = np.nonzero(a.mask)
    m = a.meta
    assert (rows.min(), cols.min(), rows.max() + 1, cols.max() + 1) == (m["bbox_r0"], m["bbox_c0"], m["bbox_r1"], m["bbox_c1"])
    r0, c0 = int(b.meta["crop_r0"]), int(b.meta["crop_c0"])
    h, w = b.shape
    assert np.array_equal(a.array[r0:r0 + h, c0:c0 + w], b.array)
    assert np.array_equal(a.mask[r0:r0 + h, c0:c0 + w], b.mask)
    ctx = ds.context(full)
    assert ctx.shape == (3, 512, 512) and np.array_equal(ctx[1], a.array)
    assert not np.array_equal(ctx[0], ctx[1])


def test_crop_sizes_vary_and_sizes_follow_malignancy(phantom):
    ds = SliceDataset(phantom, validate=False)
    f = ds.frame
    nod = f[f["view"] == "nodule"]
    shapes = {ds[i].shape for i in nod.index}
    assert len(shapes) > 5 and min(min(s) for s in shapes) >= 30 and max(max(s) for s in shapes) <= 256
    med = nod.groupby("malignancy")["mask_diameter_mm"].median()
    assert med[1] < med[3] < med[5]
    assert np.corrcoef(nod["diameter_mm"], nod["mask_diameter_mm"])[0, 1] > 0.8


def test_same_seed_same_data_other_seed_other_data(tmp_path):
    a = import_synthetic(tmp_path / "a", patients=3, seed=5, views=("nodule",), progress=False)
    b = import_synthetic(tmp_path / "b", patients=3, seed=5, views=("nodule",), progress=False)
    c = import_synthetic(tmp_path / "c", patients=3, seed=6, views=("nodule",), progress=False)
    da, db, dc = (SliceDataset(r.out, validate=False) for r in (a, b, c))
    assert np.array_equal(da[0].array, db[0].array)
    assert not np.array_equal(da[0].array, dc[0].array)


def test_existing_output_needs_force_and_bad_options_are_refused(tmp_path):
    out = tmp_path / "p"
    import_synthetic(out, patients=1, views=("nodule",), progress=False)
    with pytest.raises(CTNoduleError, match="--force"):
        import_synthetic(out, patients=1, views=("nodule",), progress=False)
    import_synthetic(out, patients=2, views=("nodule",), force=True, progress=False)
    assert SliceDataset(out, validate=False).frame["patient_id"].nunique() == 2
    with pytest.raises(CTNoduleError, match="views"):
        import_synthetic(tmp_path / "q", views=("axial",), progress=False)


def test_cli_import_synthetic(tmp_path):
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, ["import", "synthetic", str(tmp_path / "d"), "--patients", "2"])
    assert result.exit_code == 0, result.output
    assert "samples" in result.output and (tmp_path / "d" / "manifest.csv").is_file()
