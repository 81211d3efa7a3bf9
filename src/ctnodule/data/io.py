"""Read and write the image formats ctnodule meets: NRRD (the dataset format), NIfTI, DICOM.

Every reader returns HU (or processed float) pixels plus spacing in mm as (row, col); every writer is
atomic. Format problems become `DataError`s naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ctnodule.atomic import atomic_path
from ctnodule.data.slice import Slice
from ctnodule.errors import DataError


def write_nrrd(path: str | Path, array: np.ndarray, spacing: tuple[float, ...]) -> Path:
    """Write `array` with per-axis `spacing` (mm) as a gzip NRRD, atomically.

    gzip level 1: CT noise barely compresses, and level 9 (pynrrd's default) costs ~10x the time for a
    few percent of size (measured on the phantom: the import was dominated by zlib).
    """
    import nrrd

    array = np.ascontiguousarray(array)
    if len(spacing) != array.ndim:
        # a (k, H, W) stack given a 2D spacing: the stacking axis has no spacing of its own here
        spacing = (float("nan"),) * (array.ndim - len(spacing)) + tuple(spacing)
    header = {"spacings": [float(s) for s in spacing], "encoding": "gzip"}
    with atomic_path(path) as tmp:
        nrrd.write(str(tmp), array, header, index_order="C", compression_level=1)
    return Path(path)


def read_nrrd(path: str | Path) -> tuple[np.ndarray, tuple[float, ...]]:
    """Pixels (C order, as written) and per-axis spacing in mm (NaN where the header has none: the
    caller decides, see `ctnodule.data.checks.fill_spacing`; never a guessed 1 mm)."""
    import nrrd

    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", path)
    try:
        array, header = nrrd.read(str(path), index_order="C")
    except Exception as exc:  # pynrrd raises several types for a corrupt file
        raise DataError(f"not a readable NRRD file ({exc})", path) from exc
    spacing: list[float] | None = None
    if "spacings" in header:
        spacing = [float(s) for s in header["spacings"]]
    elif "space directions" in header:
        dirs = header["space directions"]
        spacing = [float(np.linalg.norm(d)) if d is not None and np.all(np.isfinite(d)) else np.nan for d in dirs]
        spacing = spacing[::-1]  # pynrrd lists directions in Fortran axis order
    if spacing is None or len(spacing) != array.ndim:
        spacing = [np.nan] * array.ndim
    spacing = [s if np.isfinite(s) and s > 0 else np.nan for s in spacing]
    return array, tuple(spacing)


def read_nifti(path: str | Path) -> tuple[np.ndarray, tuple[float, ...]]:
    """A NIfTI volume as stored (nibabel's (x, y, z) axes) and its voxel sizes in mm."""
    import nibabel as nib

    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", path)
    try:
        img = nib.load(str(path))
        array = np.asarray(img.dataobj)
    except Exception as exc:
        raise DataError(f"not a readable NIfTI file ({exc})", path) from exc
    return array, tuple(float(z) for z in img.header.get_zooms()[: array.ndim])


def read_dicom_slice(path: str | Path) -> Slice:
    """One DICOM CT image in HU (rescale slope/intercept applied) with its pixel spacing."""
    import pydicom

    path = Path(path)
    try:
        ds = pydicom.dcmread(str(path))
        pixels = ds.pixel_array.astype(np.float32)
    except Exception as exc:
        raise DataError(f"not a readable DICOM image ({exc})", path) from exc
    hu = pixels * float(getattr(ds, "RescaleSlope", 1.0)) + float(getattr(ds, "RescaleIntercept", 0.0))
    spacing = tuple(float(s) for s in getattr(ds, "PixelSpacing", (np.nan, np.nan)))  # NaN: unknown
    return Slice(np.round(hu).astype(np.int16), (spacing[0], spacing[1]), {"source_file": str(path)})


def read_slice(path: str | Path, allow_volume: bool = False) -> Slice:
    """Any single-slice input a user may hand to `predict`: NRRD, NIfTI or DICOM, in HU.

    A 3D NIfTI/NRRD volume is refused, or reduced to its middle axial slice with `allow_volume`; the
    spacing is NaN where the file has none (`ctnodule.data.checks.fill_spacing` decides). Screenshots
    (PNG/JPEG) carry no HU and are refused with a message saying so.
    """
    path = Path(path)
    name = path.name.lower()
    if name.endswith(".nrrd"):
        array, spacing = read_nrrd(path)
        if array.ndim == 3 and 1 in array.shape:  # a slice stored as (1, H, W)
            keep = [i for i, n in enumerate(array.shape) if n != 1]
            array, spacing = array.reshape([array.shape[i] for i in keep]), tuple(spacing[i] for i in keep)
        if array.ndim == 3:
            _volume(array, path, allow_volume)
            array, spacing = array[array.shape[0] // 2], spacing[1:]
        return Slice(array, (spacing[-2], spacing[-1]), {"source_file": str(path)})
    if name.endswith((".nii", ".nii.gz")):
        array, zooms = read_nifti(path)
        if array.ndim == 3 and array.shape[2] == 1:
            array = array[:, :, 0]
        if array.ndim == 3:
            _volume(array, path, allow_volume)
            array = array[:, :, array.shape[2] // 2]
        # nibabel (x, y) -> image (row = y, col = x)
        return Slice(np.ascontiguousarray(array.T), (zooms[1], zooms[0]), {"source_file": str(path)})
    if name.endswith(".dcm") or not path.suffix:
        return read_dicom_slice(path)
    raise DataError(
        "unsupported file type; give NRRD (.nrrd), NIfTI (.nii/.nii.gz) or DICOM (.dcm) in Hounsfield units",
        path,
    )


def _volume(array: np.ndarray, path: Path, allow: bool) -> None:
    if not allow:
        raise DataError(f"a 3D volume of shape {array.shape}, not one slice: export the slice to predict, or "
                        "pass --allow volume to use its middle slice", path)
