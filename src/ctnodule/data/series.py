"""DICOM series on disk: the one place that reads headers, groups files by series and orders slices.

`scan_headers` is shared by the LIDC importer (lenient: it skips what it cannot use and reports it) and
`read_series` (strict: a volume for prediction must be whole, so every inconsistency is one `DataError`
naming the folder or file). Slices are ordered by ImagePositionPatient projected on the slice normal
(the cross product of ImageOrientationPatient's row and column vectors), never by file name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ctnodule.data.io import read_dicom_slice
from ctnodule.data.volume import AIR_HU, Volume
from ctnodule.errors import DataError

_TAGS = ["ImagePositionPatient", "SeriesInstanceUID", "StudyInstanceUID", "PatientID", "PixelSpacing",
         "Rows", "Columns", "SliceThickness", "ImageOrientationPatient"]
#: relative tolerance on slice spacing: a step this much larger than the usual one is a missing slice
SPACING_TOLERANCE = 0.1


@dataclasses.dataclass
class Header:
    """What ordering and geometry need from one DICOM file (pixels are not read)."""

    path: Path
    position: np.ndarray  # ImagePositionPatient (LPS mm)
    orientation: np.ndarray  # ImageOrientationPatient: row direction (3) + column direction (3)
    ds: object  # the pydicom header

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.orientation[:3], self.orientation[3:])

    @property
    def along(self) -> float:
        """Position along the slice normal (mm): the sort key; equals z for axial slices."""
        return float(self.position @ self.normal)


def scan_headers(folder: Path, on_bad: Callable[[Path, str], None]) -> dict[str, list[Header]]:
    """Headers of the DICOM files in `folder` grouped by SeriesInstanceUID, each group sorted along its
    slice normal. Files that are not usable CT slices go to `on_bad(path, reason)`.

    `*.dcm` files if there are any, else every file (TCIA downloads sometimes have no extension).
    """
    import pydicom

    paths = sorted(folder.glob("*.dcm")) or sorted(p for p in folder.iterdir() if p.is_file())
    groups: dict[str, list[Header]] = {}
    for path in paths:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_TAGS)
            position = np.array([float(v) for v in ds.ImagePositionPatient])
            uid = str(ds.SeriesInstanceUID)
        except Exception as exc:  # noqa: BLE001  pydicom raises many types; one bad file must not stop a scan
            on_bad(path, f"unreadable DICOM header or no ImagePositionPatient ({type(exc).__name__})")
            continue
        orientation = np.array([float(v) for v in getattr(ds, "ImageOrientationPatient", [1, 0, 0, 0, 1, 0])])
        groups.setdefault(uid, []).append(Header(path, position, orientation, ds))
    for items in groups.values():
        items.sort(key=lambda h: h.along)
    return groups


def read_series(folder: str | Path, series_uid: str | None = None) -> Volume:
    """One whole DICOM series as a `Volume` in HU (rescale slope/intercept applied, floored at AIR_HU).

    Several series in the folder: pick one with `series_uid` (the error lists them). Refused, each with
    one `DataError`: unreadable files, mixed orientation, image size or pixel spacing, two slices at one
    position, a missing slice or uneven slice spacing, fewer than two slices.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError("DICOM series folder not found", folder)

    def refuse(path: Path, reason: str) -> None:
        raise DataError(f"{reason}; remove the file or pass a folder holding one clean series", path)

    groups = scan_headers(folder, refuse)
    if not groups:
        raise DataError("no DICOM files here", folder)
    listing = ", ".join(f"{uid} ({len(h)} slices)" for uid, h in sorted(groups.items()))
    if series_uid is None:
        if len(groups) > 1:
            raise DataError(f"{len(groups)} series in this folder: {listing}; choose one with --series UID",
                            folder)
        series_uid = next(iter(groups))
    if series_uid not in groups:
        raise DataError(f"series {series_uid} is not here; the folder holds {listing}", folder)
    headers = groups[series_uid]
    _check_geometry(folder, headers)
    first = headers[0]
    pixels = []
    for h in headers:
        pixels.append(np.maximum(read_dicom_slice(h.path).array, np.int16(AIR_HU)))
    row_mm, col_mm = (float(s) for s in first.ds.PixelSpacing)
    step = float(np.median(np.diff([h.along for h in headers])))
    # columns of `direction`: i runs along the row direction (next column), j along the column direction
    direction = np.stack([first.orientation[:3], first.orientation[3:], first.normal], axis=1)
    return Volume(hu=np.stack(pixels), spacing=(col_mm, row_mm, step), origin=first.position.copy(),
                  direction=direction, source=folder, series_uid=series_uid,
                  patient_id=str(getattr(first.ds, "PatientID", "")))


def _check_geometry(folder: Path, headers: list[Header]) -> None:
    """Every slice on one grid, evenly stacked; the first file that breaks it is named."""
    if len(headers) < 2:
        raise DataError("only one slice in the series; a volume needs at least two (pass a single slice "
                        "file without a location instead)", folder)
    first = headers[0]
    for h in headers[1:]:
        if not np.allclose(h.orientation, first.orientation, atol=1e-3):
            raise DataError(f"ImageOrientationPatient {h.orientation.round(3).tolist()} differs from "
                            f"{first.path.name}'s {first.orientation.round(3).tolist()} (mixed series?)", h.path)
        if (int(h.ds.Rows), int(h.ds.Columns)) != (int(first.ds.Rows), int(first.ds.Columns)):
            raise DataError(f"image size {h.ds.Rows}x{h.ds.Columns} differs from {first.path.name}'s "
                            f"{first.ds.Rows}x{first.ds.Columns}", h.path)
        if not np.allclose([float(v) for v in h.ds.PixelSpacing], [float(v) for v in first.ds.PixelSpacing],
                           rtol=1e-3):
            raise DataError(f"PixelSpacing {list(h.ds.PixelSpacing)} differs from {first.path.name}'s "
                            f"{list(first.ds.PixelSpacing)}", h.path)
    along = np.array([h.along for h in headers])
    gaps = np.diff(along)
    for n, gap in enumerate(gaps):
        if gap < 1e-3:
            raise DataError(f"two slices at the same position ({along[n]:g} mm along the slice normal): "
                            f"{headers[n].path.name} and {headers[n + 1].path.name}", folder)
    step = float(np.median(gaps))
    for n, gap in enumerate(gaps):
        if abs(gap - step) > SPACING_TOLERANCE * step:
            what = (f"{round(gap / step) - 1} missing slice(s)" if gap > 1.5 * step
                    else "uneven slice spacing")
            raise DataError(f"{what} between {headers[n].path.name} ({along[n]:g} mm) and "
                            f"{headers[n + 1].path.name} ({along[n + 1]:g} mm); the usual step is "
                            f"{step:g} mm", folder)


def write_series(folder: str | Path, hu: np.ndarray, spacing: tuple[float, float, float],
                 origin: tuple[float, float, float] = (0.0, 0.0, 0.0), series_uid: str | None = None,
                 patient_id: str = "SYNTHETIC") -> list[Path]:
    """Write a (k, j, i) HU volume as an axial CT DICOM series (int16, slope 1, intercept -1024), one
    file per slice, atomically; `spacing` is (i, j, k) mm. For demos, tests and benchmarks."""
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    from ctnodule.atomic import atomic_path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = series_uid or generate_uid()
    study_uid = generate_uid()
    paths = []
    for k, plane in enumerate(np.asarray(hu)):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = pydicom.Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.PatientID = "CT", patient_id
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [float(origin[0]), float(origin[1]), float(origin[2]) + k * spacing[2]]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [float(spacing[1]), float(spacing[0])]
        ds.SliceThickness = float(spacing[2])
        ds.Rows, ds.Columns = plane.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
        ds.PixelData = (plane.astype(np.int32) + 1024).astype(np.int16).tobytes()
        path = folder / f"slice-{k:04d}.dcm"
        with atomic_path(path) as tmp:
            ds.save_as(tmp, enforce_file_format=True)
        paths.append(path)
    return paths
