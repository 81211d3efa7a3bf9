"""Volumes from DICOM series, NIfTI and NRRD: slice order, HU scaling, world <-> voxel, broken series."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from ctnodule.data.series import read_series, write_series
from ctnodule.data.volume import AIR_HU, read_volume
from ctnodule.errors import DataError

SPACING = (0.7, 0.8, 2.5)  # (i, j, k) mm
ORIGIN = (-120.0, -90.0, -300.0)


def _volume(seed: int = 0) -> np.ndarray:
    """A (k, j, i) HU volume with a different value per slice and one bright landmark voxel."""
    rng = np.random.default_rng(seed)
    hu = rng.integers(-900, 100, size=(6, 20, 24)).astype(np.int16)
    hu[:, 0, 0] = np.arange(6) * 100 - 800  # slice number readable from a corner
    hu[4, 7, 11] = 1500  # landmark at (i, j, k) = (11, 7, 4)
    return hu


@pytest.fixture()
def series(tmp_path: Path) -> Path:
    folder = tmp_path / "series"
    write_series(folder, _volume(), SPACING, ORIGIN, series_uid="1.2.3.4")
    return folder


def test_dicom_series_reads_in_position_order_with_hu_and_geometry(series: Path):
    # file names in reverse position order: reading must follow ImagePositionPatient, not names
    files = sorted(series.glob("*.dcm"))
    for f in files:
        f.rename(series / f"x{len(files) - int(f.stem.split('-')[1]):04d}.dcm")
    vol = read_volume(series)
    assert np.array_equal(vol.hu, _volume())  # order + intercept -1024 undone + int16
    assert vol.spacing == pytest.approx(SPACING) and vol.series_uid == "1.2.3.4"
    landmark = vol.to_world((11, 7, 4))
    assert landmark == pytest.approx([ORIGIN[0] + 11 * 0.7, ORIGIN[1] + 7 * 0.8, ORIGIN[2] + 4 * 2.5])
    i, j, k = np.round(vol.to_voxel(landmark)).astype(int)
    assert vol.hu[k, j, i] == 1500


def test_rescale_slope_and_padding_floor(series: Path):
    path = sorted(series.glob("*.dcm"))[2]
    ds = pydicom.dcmread(path)
    raw = ds.pixel_array.astype(np.int32)
    ds.RescaleSlope, ds.RescaleIntercept = 2, -2048
    ds.save_as(path)
    vol = read_series(series)
    assert np.array_equal(vol.hu[2], np.maximum(raw * 2 - 2048, AIR_HU))


def test_nifti_and_nrrd_agree_with_dicom_in_world_coordinates(series: Path, tmp_path: Path):
    import nibabel as nib
    import nrrd

    vol = read_volume(series)
    # NIfTI: (i, j, k) array with a RAS affine (x and y flipped from DICOM's LPS)
    affine = np.diag([-SPACING[0], -SPACING[1], SPACING[2], 1.0])
    affine[:3, 3] = [-ORIGIN[0], -ORIGIN[1], ORIGIN[2]]
    nib.save(nib.Nifti1Image(np.transpose(vol.hu, (2, 1, 0)), affine), tmp_path / "v.nii.gz")
    nrrd.write(str(tmp_path / "v.nrrd"), np.transpose(vol.hu, (2, 1, 0)), {
        "space": "left-posterior-superior", "space directions": np.diag(SPACING), "space origin": np.array(ORIGIN)})
    landmark = vol.to_world((11, 7, 4))
    for path in (tmp_path / "v.nii.gz", tmp_path / "v.nrrd"):
        other = read_volume(path)
        assert np.array_equal(other.hu, vol.hu)
        assert other.to_voxel(landmark) == pytest.approx([11, 7, 4])


def _break(series: Path, how: str) -> None:
    files = sorted(series.glob("*.dcm"))
    if how == "gap":
        files[3].unlink()
    elif how == "duplicate":
        ds = pydicom.dcmread(files[2])
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
        ds.save_as(series / "copy.dcm")
    elif how == "spacing":
        ds = pydicom.dcmread(files[4])
        ds.PixelSpacing = [0.9, 0.7]
        ds.save_as(files[4])
    elif how == "uneven":
        ds = pydicom.dcmread(files[5])
        ds.ImagePositionPatient = [ORIGIN[0], ORIGIN[1], ORIGIN[2] + 4 * 2.5 + 1.0]
        ds.save_as(files[5])
    elif how == "orientation":
        ds = pydicom.dcmread(files[1])
        ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
        ds.save_as(files[1])
    elif how == "junk":
        (series / "notes.dcm").write_text("not dicom")


@pytest.mark.parametrize("how, message", [
    ("gap", "1 missing slice"), ("duplicate", "two slices at the same position"),
    ("spacing", "PixelSpacing"), ("uneven", "uneven slice spacing"), ("orientation", "ImageOrientationPatient"),
    ("junk", "unreadable DICOM header"),
])
def test_broken_series_is_one_clear_error(series: Path, how: str, message: str):
    _break(series, how)
    with pytest.raises(DataError, match=message) as info:
        read_series(series)
    assert str(series) in str(info.value)  # names the folder or a file in it


def test_mixed_series_need_a_choice(series: Path, tmp_path: Path):
    write_series(tmp_path / "other", _volume(1), SPACING, ORIGIN, series_uid="9.8.7")
    for f in (tmp_path / "other").glob("*.dcm"):
        shutil.move(f, series / f"other-{f.name}")
    with pytest.raises(DataError, match=r"2 series.*1\.2\.3\.4 \(6 slices\).*9\.8\.7.*--series"):
        read_series(series)
    assert np.array_equal(read_series(series, "9.8.7").hu, _volume(1))
    with pytest.raises(DataError, match="series 5.5 is not here"):
        read_series(series, "5.5")


def test_real_lidc_series_order_hu_and_landmark(lidc_src: Path):
    folder = next(p.parent for p in sorted((lidc_src / "LIDC-IDRI-0001").rglob("*.dcm")))
    vol = read_volume(folder)
    files = sorted(folder.glob("*.dcm"))
    heads = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    zs = sorted(float(h.ImagePositionPatient[2]) for h in heads)
    assert vol.hu.shape == (len(files), 512, 512) and vol.spacing[2] == pytest.approx(2.5)
    # a known landmark: each file's ImagePositionPatient is the world position of its voxel (0, 0, k),
    # and its pixel (row 100, col 200) is the volume's voxel (i=200, j=100, k)
    for path, head in list(zip(files, heads))[::5]:
        k = zs.index(float(head.ImagePositionPatient[2]))
        assert vol.to_voxel([float(v) for v in head.ImagePositionPatient]) == pytest.approx([0, 0, k], abs=1e-6)
        ds = pydicom.dcmread(path)
        hu = ds.pixel_array[100, 200] * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        assert vol.hu[k, 100, 200] == max(hu, AIR_HU)
    # the readers' nodule (sheet centre 56.2, 86.3, -115.9 mm) is soft tissue, the corner is air
    i, j, k = np.round(vol.to_voxel((56.2, 86.3, -115.9))).astype(int)
    assert vol.hu[k, j, i] > -300 and vol.hu[k, 5, 5] < -900


def test_trimmed_real_series_is_refused_at_its_gap(lidc_src: Path):
    folder = next(p.parent for p in (lidc_src / "LIDC-IDRI-0132").rglob("*.dcm")
                  if p.parent.name.endswith("299641922057"))
    with pytest.raises(DataError, match="missing slice"):
        read_volume(folder)
