"""Image I/O: NRRD round trip with spacing, NIfTI/DICOM readers, `read_slice` orientation and refusals."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from ctnodule.data.io import read_dicom_slice, read_nifti, read_nrrd, read_slice, write_nrrd
from ctnodule.errors import DataError


def test_nrrd_round_trip_keeps_pixels_dtype_and_spacing(tmp_path):
    a = np.arange(-600, -600 + 7 * 9, dtype=np.int16).reshape(7, 9)
    write_nrrd(tmp_path / "a.nrrd", a, (0.6, 0.8))
    b, spacing = read_nrrd(tmp_path / "a.nrrd")
    assert b.dtype == np.int16 and np.array_equal(a, b) and spacing == pytest.approx((0.6, 0.8))
    stack = np.stack([a, a + 1, a + 2])
    write_nrrd(tmp_path / "s.nrrd", stack, (0.6, 0.8))  # 2D spacing for a stack: the stack axis has none
    c, spacing = read_nrrd(tmp_path / "s.nrrd")
    assert np.array_equal(c, stack) and spacing[1:] == pytest.approx((0.6, 0.8))
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


def test_unreadable_or_missing_files_are_data_errors(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_nrrd(tmp_path / "none.nrrd")
    (tmp_path / "bad.nrrd").write_text("not an nrrd")
    with pytest.raises(DataError, match="not a readable NRRD"):
        read_nrrd(tmp_path / "bad.nrrd")
    with pytest.raises(DataError, match="unsupported file type"):
        read_slice(tmp_path / "shot.png")


def test_read_slice_transposes_nifti_to_rows_y_cols_x(tmp_path):
    vol = np.arange(4 * 3 * 5, dtype=np.int16).reshape(4, 3, 5)  # (x, y, z)
    nib.save(nib.Nifti1Image(vol, np.diag([0.7, 0.9, 2.0, 1.0])), tmp_path / "v.nii.gz")
    array, zooms = read_nifti(tmp_path / "v.nii.gz")
    assert array.shape == (4, 3, 5) and zooms == pytest.approx((0.7, 0.9, 2.0))
    s = read_slice(tmp_path / "v.nii.gz", allow_volume=True)
    assert s.shape == (3, 4) and np.array_equal(s.array, vol[:, :, 2].T) and s.spacing == pytest.approx((0.9, 0.7))


@pytest.mark.realdata
def test_dicom_slice_in_hu(lidc_src):
    path = min(lidc_src.rglob("*.dcm"))
    s = read_dicom_slice(path)
    assert s.shape == (512, 512) and s.array.dtype == np.int16
    assert s.array.min() <= -1000 and 0 < s.spacing[0] < 1.0
    body = s.array[200:300, 200:300]
    assert -1100 < np.median(body) < 200  # HU after RescaleSlope/Intercept, not raw stored values


def test_nrrd_without_spacing_reads_as_unknown_not_one_mm(tmp_path):
    import nrrd

    from ctnodule.data.checks import fill_spacing

    a = np.arange(-600, -600 + 48 * 48, dtype=np.int16).reshape(48, 48)
    nrrd.write(str(tmp_path / "a.nrrd"), a, index_order="C")
    _, spacing = read_nrrd(tmp_path / "a.nrrd")
    assert all(np.isnan(s) for s in spacing)
    s = read_slice(tmp_path / "a.nrrd")
    with pytest.raises(DataError, match="a.nrrd.*--spacing"):
        fill_spacing(s.spacing, None, tmp_path / "a.nrrd")
    assert fill_spacing(s.spacing, 0.6, tmp_path / "a.nrrd") == (0.6, 0.6)
    assert fill_spacing((0.7, 0.8), 0.6, tmp_path / "a.nrrd") == (0.7, 0.8)  # the header's wins


def test_read_slice_refuses_a_volume_unless_allowed(tmp_path):
    vol = np.arange(5 * 48 * 48, dtype=np.int16).reshape(5, 48, 48) - 1000
    write_nrrd(tmp_path / "v.nrrd", vol, (2.5, 0.7, 0.7))
    with pytest.raises(DataError, match="3D volume.*--allow volume"):
        read_slice(tmp_path / "v.nrrd")
    s = read_slice(tmp_path / "v.nrrd", allow_volume=True)
    assert np.array_equal(s.array, vol[2]) and s.spacing == pytest.approx((0.7, 0.7))
