"""A 3D CT volume in HU with its geometry, read from a DICOM series folder, NIfTI or NRRD.

Array axes are (k, j, i) = (slice, row, column); a voxel index is written (i, j, k) like ITK and LUNA16.
World coordinates are DICOM patient coordinates (LPS, mm), the frame of ImagePositionPatient and of
LUNA16's `coordX, coordY, coordZ`; NIfTI's RAS and NRRD's declared space are converted to it, so one
location means the same point whatever file the scan came in.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ctnodule.errors import DataError

#: HU floor: pixels outside the scanner's circular field of view carry a padding value (-2048 or -3024 HU
#: after rescaling in LIDC), not a measurement; as air they no longer dominate windowing or the
#: Laplacian-variance noise measure (explore showed padded scans ~20x "noisier" than unpadded ones)
AIR_HU = -1024

#: RAS (NIfTI) <-> LPS (DICOM): the first two world axes change sign
_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])


@dataclasses.dataclass
class Volume:
    """HU voxels (int16, axes (k, j, i)) and where they sit in the patient.

    `spacing` is (i, j, k) mm (column, row, slice), `origin` the world position (LPS mm) of voxel
    (0, 0, 0), `direction` a 3x3 matrix whose columns are the world unit vectors of the i, j, k axes.
    """

    hu: np.ndarray
    spacing: tuple[float, float, float]
    origin: np.ndarray
    direction: np.ndarray
    source: Path
    series_uid: str = ""
    patient_id: str = ""

    @property
    def shape_ijk(self) -> tuple[int, int, int]:
        k, j, i = self.hu.shape
        return i, j, k

    def _matrix(self) -> np.ndarray:
        return self.direction @ np.diag(self.spacing)

    def to_world(self, ijk: np.ndarray | tuple[float, float, float]) -> np.ndarray:
        """World position (LPS mm) of voxel index (i, j, k); also an (N, 3) array of them."""
        ijk = np.asarray(ijk, dtype=float)
        return ijk @ self._matrix().T + self.origin

    def to_voxel(self, xyz: np.ndarray | tuple[float, float, float]) -> np.ndarray:
        """Continuous voxel index (i, j, k) of a world position (LPS mm); also (N, 3)."""
        xyz = np.asarray(xyz, dtype=float)
        return (xyz - self.origin) @ np.linalg.inv(self._matrix()).T

    def contains(self, ijk: np.ndarray) -> bool:
        """Whether a (rounded) voxel index lies inside the array."""
        r = np.round(np.asarray(ijk, dtype=float))
        return bool(np.all(r >= 0) and np.all(r <= np.asarray(self.shape_ijk) - 1))

    def world_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Lowest and highest world coordinate per axis over the eight corner voxels (for messages)."""
        corners = np.array([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)], float)
        pts = self.to_world(corners * (np.asarray(self.shape_ijk) - 1))
        return pts.min(axis=0), pts.max(axis=0)

    @property
    def axial(self) -> bool:
        """Rows and columns lie in the axial plane (k along the body axis), as the models were trained."""
        return abs(abs(self.direction[2, 2]) - 1.0) < 1e-3


def read_volume(path: str | Path, series_uid: str | None = None) -> Volume:
    """A DICOM series folder, a NIfTI (.nii/.nii.gz) or an NRRD (.nrrd) file as a `Volume` in HU."""
    path = Path(path)
    if path.is_dir():
        from ctnodule.data.series import read_series

        return read_series(path, series_uid)
    if not path.is_file():
        raise DataError("not found: give a DICOM series folder, a NIfTI or an NRRD volume", path)
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        return _read_nifti_volume(path)
    if name.endswith(".nrrd"):
        return _read_nrrd_volume(path)
    raise DataError("not a volume: give a DICOM series folder, a NIfTI (.nii/.nii.gz) or an NRRD (.nrrd) file",
                    path)


def _finish(path: Path, xyz: np.ndarray, linear: np.ndarray, origin: np.ndarray) -> Volume:
    """Volume from an (i, j, k) array and the 3x3 voxel -> world (LPS) matrix (columns = axes)."""
    if xyz.ndim != 3:
        raise DataError(f"expected a 3D volume, got shape {xyz.shape}", path)
    spacing = np.linalg.norm(linear, axis=0)
    if np.any(~np.isfinite(spacing)) or np.any(spacing <= 0):
        raise DataError(f"voxel size {spacing.tolist()} in the header is not usable", path)
    hu = np.maximum(np.round(np.transpose(np.asarray(xyz, dtype=np.float32), (2, 1, 0))), AIR_HU)
    return Volume(hu=np.ascontiguousarray(hu.astype(np.int16)), spacing=tuple(float(s) for s in spacing),
                  origin=np.asarray(origin, float), direction=linear / spacing, source=path)


def _read_nifti_volume(path: Path) -> Volume:
    import nibabel as nib

    try:
        img = nib.load(str(path))
        data = np.asarray(img.dataobj, dtype=np.float32)  # scl_slope/inter applied by nibabel
    except Exception as exc:
        raise DataError(f"not a readable NIfTI file ({exc})", path) from exc
    affine = _RAS_TO_LPS @ img.affine[:3]
    return _finish(path, data, affine[:, :3], affine[:, 3])


def _read_nrrd_volume(path: Path) -> Volume:
    import nrrd

    try:
        data, header = nrrd.read(str(path), index_order="F")  # axes (i, j, k), as 'space directions'
    except Exception as exc:
        raise DataError(f"not a readable NRRD file ({exc})", path) from exc
    if data.ndim != 3:
        raise DataError(f"expected a 3D volume, got shape {data.shape}", path)
    if "space directions" in header and header["space directions"] is not None:
        linear = np.asarray(header["space directions"], float).T
        origin = np.asarray(header.get("space origin", np.zeros(3)), float)
        space = str(header.get("space", "left-posterior-superior")).lower()
        if space in ("right-anterior-superior", "ras"):
            linear, origin = _RAS_TO_LPS @ linear, _RAS_TO_LPS @ origin
        elif space not in ("left-posterior-superior", "lps"):
            raise DataError(f"NRRD space {space!r} is not supported; save it as LPS or RAS", path)
    else:
        linear = np.diag([float(s) for s in header.get("spacings", [1.0, 1.0, 1.0])])
        origin = np.zeros(3)
    return _finish(path, data, linear, origin)
