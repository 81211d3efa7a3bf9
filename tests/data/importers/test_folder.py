"""`import folder`: NRRD slices + labels CSV, from the phantom and from real VOI slices; every bad row named."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ctnodule.data import SliceDataset
from ctnodule.data.importers import import_folder, import_voi
from ctnodule.data.io import write_nrrd
from ctnodule.errors import DataError


def _export(ds: SliceDataset, folder, n=None):
    """Write a dataset's slices (and masks) as a plain folder + labels CSV, the seed's layout."""
    rows = []
    for i in range(len(ds) if n is None else n):
        s = ds[i]
        name = f"img/{s.meta['sample_id']}.nrrd"
        write_nrrd(folder / name, s.array, s.spacing)
        row = {"filename": name, "malignancy": s.meta["malignancy"], "patient_id": s.meta["patient_id"],
               "view": s.meta["view"], "diameter_mm": s.meta.get("diameter_mm")}
        if s.mask is not None:
            write_nrrd(folder / f"mask/{s.meta['sample_id']}.nrrd", s.mask, s.spacing)
            row["mask"] = f"mask/{s.meta['sample_id']}.nrrd"
        rows.append(row)
    pd.DataFrame(rows).to_csv(folder / "labels.csv", index=False)
    return folder


def test_phantom_round_trip(phantom, tmp_path):
    src = SliceDataset(phantom, validate=False)
    folder = _export(src, tmp_path / "plain", n=12)
    report = import_folder(tmp_path / "out", src=folder, labels=folder / "labels.csv", progress=False)
    ds = SliceDataset(report.path)
    assert len(ds) == 12 and (ds.frame["source"] == "folder").all()
    for i in range(12):
        a, b = src[i], ds[i]
        assert np.array_equal(a.array, b.array) and np.array_equal(a.mask, b.mask)
        assert b.spacing == pytest.approx(a.spacing) and b.meta["malignancy"] == a.meta["malignancy"]
        assert b.meta["bbox_r0"] == a.meta["bbox_r0"] and b.meta["diameter_mm"] == pytest.approx(a.meta["diameter_mm"])
    assert list(ds.frame["view"]) == list(src.frame["view"][:12])


@pytest.mark.realdata
def test_real_voi_slices_round_trip(voi_src, tmp_path):
    voi = SliceDataset(import_voi(tmp_path / "voi", src=voi_src, limit=15, progress=False).path, validate=False)
    folder = _export(voi, tmp_path / "plain")
    ds = SliceDataset(import_folder(tmp_path / "out", src=folder, labels=folder / "labels.csv", progress=False).path)
    assert len(ds) == len(voi) and np.array_equal(ds[3].array, voi[3].array)
    assert (ds.frame["mask_area_mm2"] == voi.frame["mask_area_mm2"]).all()


def _bad_folder(tmp_path):
    folder = tmp_path / "plain"
    ct = np.random.default_rng(0).integers(-1000, 400, (10, 12)).astype(np.int16)
    write_nrrd(folder / "a.nrrd", ct, (0.7, 0.7))
    write_nrrd(folder / "vol.nrrd", np.zeros((3, 10, 12), np.int16), (2.0, 0.7, 0.7))
    nan = np.zeros((10, 12), np.float32)
    nan[1, 1] = np.nan
    write_nrrd(folder / "nan.nrrd", nan, (0.7, 0.7))
    rows = [("a.nrrd", "3", "P1", "nodule"),  # row 2: fine
            ("missing.nrrd", "3", "P1", "nodule"),  # row 3
            ("a.nrrd", "7", "P1", "nodule"),  # row 4: label + duplicate sample id
            ("vol.nrrd", "2", "P2", "full"),  # row 5: 3D
            ("nan.nrrd", "2", "", "axial")]  # row 6: NaN, no patient, bad view
    pd.DataFrame(rows, columns=["filename", "malignancy", "patient_id", "view"]).to_csv(folder / "l.csv", index=False)
    return folder


def test_every_bad_row_is_named(tmp_path):
    folder = _bad_folder(tmp_path)
    with pytest.raises(DataError) as err:
        import_folder(tmp_path / "out", src=folder, labels=folder / "l.csv", progress=False)
    msg = str(err.value)
    assert "4 invalid row(s)" in msg and "row 2:" not in msg
    assert "row 3:" in msg and "missing.nrrd" in msg and "not found" in msg
    assert "row 4:" in msg and "'7'" in msg and "duplicate sample_id 'a' (first in row 2)" in msg
    assert "row 5:" in msg and "(3, 10, 12)" in msg
    assert "row 6:" in msg and "NaN" in msg
    assert not (tmp_path / "out").exists()


def test_skip_invalid_imports_the_rest(tmp_path):
    folder = _bad_folder(tmp_path)
    report = import_folder(tmp_path / "out", src=folder, labels=folder / "l.csv", on_error="skip", progress=False)
    assert report.n_samples == 1 and len(report.skipped) == 4
    assert SliceDataset(report.path)[0].meta["sample_id"] == "a"


def test_bad_csv_is_refused(tmp_path):
    (tmp_path / "l.csv").write_text("filename,malignancy\na.nrrd,3\n")
    with pytest.raises(DataError, match=r"missing column\(s\) \['patient_id', 'view'\]"):
        import_folder(tmp_path / "out", src=tmp_path, labels=tmp_path / "l.csv", progress=False)
    with pytest.raises(DataError, match="labels CSV not found"):
        import_folder(tmp_path / "out", src=tmp_path, labels=tmp_path / "none.csv", progress=False)


def _one_row_folder(tmp_path, array, write=None):
    folder = tmp_path / "src"
    folder.mkdir(parents=True, exist_ok=True)
    (write or (lambda p, a: write_nrrd(p, a, (0.7, 0.7))))(folder / "a.nrrd", array)
    pd.DataFrame([("a.nrrd", "3", "P1", "nodule")],
                 columns=["filename", "malignancy", "patient_id", "view"]).to_csv(folder / "l.csv", index=False)
    return folder


def _ct_like(seed=0):
    return np.random.default_rng(seed).integers(-1000, 400, (48, 48)).astype(np.int16)


def test_missing_spacing_is_an_error_unless_given(tmp_path):
    import nrrd

    folder = _one_row_folder(tmp_path, _ct_like(), write=lambda p, a: nrrd.write(str(p), a, index_order="C"))
    with pytest.raises(DataError, match="spacing.*--spacing"):
        import_folder(tmp_path / "out", src=folder, labels=folder / "l.csv", progress=False)
    report = import_folder(tmp_path / "out", src=folder, labels=folder / "l.csv", spacing=0.8, progress=False)
    assert SliceDataset(report.path)[0].spacing == (0.8, 0.8)
    # a header that has spacing keeps it: --spacing only fills in what is missing
    folder = _one_row_folder(tmp_path / "b", _ct_like())
    report = import_folder(tmp_path / "out2", src=folder, labels=folder / "l.csv", spacing=0.8, progress=False)
    assert SliceDataset(report.path)[0].spacing == (0.7, 0.7)


@pytest.mark.parametrize(("array", "why"), [
    (np.full((48, 48), -700, np.int16), "constant"),
    (np.zeros((48, 48), np.int16), "constant"),
    ((np.arange(48 * 48).reshape(48, 48) % 256).astype(np.int16), "0..255"),
    (np.array([[40]], np.int16), "1 x 1"),
])
def test_images_that_are_not_ct_slices_are_refused_at_import(tmp_path, array, why):
    folder = _one_row_folder(tmp_path, array)
    with pytest.raises(DataError, match=why):
        import_folder(tmp_path / "out", src=folder, labels=folder / "l.csv", progress=False)
    assert not (tmp_path / "out").exists()


def test_int16_in_0_255_may_be_allowed(tmp_path):
    folder = _one_row_folder(tmp_path, (np.arange(48 * 48).reshape(48, 48) % 256).astype(np.int16))
    report = import_folder(tmp_path / "out", src=folder, labels=folder / "l.csv", allow=("0-255",), progress=False)
    assert report.n_samples == 1


def test_an_import_with_zero_samples_names_what_was_skipped(tmp_path):
    folder = _one_row_folder(tmp_path, np.zeros((48, 48), np.int16))
    with pytest.raises(DataError) as err:
        import_folder(tmp_path / "out", src=folder, labels=folder / "l.csv", on_error="skip", progress=False)
    msg = str(err.value)
    assert "no samples" in msg and "l.csv row 2" in msg and "constant" in msg
    assert "manifest" not in msg and ".tmp-" not in msg
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.*"))


def test_paths_with_spaces_and_unicode(phantom, tmp_path):
    """Source, labels and output under folder names with spaces and non-ASCII letters round-trip."""
    src = SliceDataset(phantom, validate=False)
    folder = _export(src, tmp_path / "Daten für Ärztin" / "mein ordner", n=3)
    report = import_folder(tmp_path / "Ausgabe é ü" / "nodules 1", src=folder, labels=folder / "labels.csv",
                           progress=False)
    ds = SliceDataset(report.path)
    assert len(ds) == 3 and np.array_equal(ds[2].array, src[2].array)
