"""A DICOM CT series on disk, read lazily: headers of every file, pixels only of the slices asked for.

Slices are ordered by ImagePositionPatient z (file names are not slice order), and a series may be
trimmed into separate blocks, so nothing assumes contiguous, evenly spaced slices: `index_of(z)` finds
a slice by position and `neighbours` repeats the nearer slice where a neighbour is missing.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ctnodule.data.importers.base import Skips
from ctnodule.data.io import read_dicom_slice
from ctnodule.data.series import scan_headers
from ctnodule.data.volume import AIR_HU


@dataclasses.dataclass
class Series:
    folder: Path
    uid: str
    study_uid: str
    patient_id: str
    files: list[Path]  # sorted by z
    z: np.ndarray  # ImagePositionPatient z of each file, ascending
    spacing: tuple[float, float]  # (row, col) mm
    shape: tuple[int, int]
    thickness: float  # typical distance between neighbouring slices, mm
    xml: Path | None
    _cache: dict[int, np.ndarray] = dataclasses.field(default_factory=dict, repr=False)

    def index_of(self, z: float) -> int | None:
        """The slice at position `z` (within a fifth of the thickness), None if it is not in the series."""
        i = int(np.argmin(np.abs(self.z - z)))
        return i if abs(self.z[i] - z) <= min(0.5, 0.2 * self.thickness) else None

    def neighbours(self, i: int, k: int) -> tuple[list[int], int]:
        """Indices of the slices at -k..k x thickness around slice `i`, and how many were missing and
        replaced by repeating the nearer slice (series edge or a gap in a trimmed series)."""
        out = {0: i}
        replicated = 0
        for step in (-1, 1):
            for d in range(1, k + 1):
                j = self.index_of(self.z[i] + step * d * self.thickness)
                if j is None:
                    j, replicated = out[step * (d - 1)], replicated + 1
                out[step * d] = j
        return [out[d] for d in range(-k, k + 1)], replicated

    def pixels(self, i: int) -> np.ndarray:
        """Slice `i` in HU (int16, floored at `AIR_HU`), read once."""
        if i not in self._cache:
            self._cache[i] = np.maximum(read_dicom_slice(self.files[i]).array, np.int16(AIR_HU))
        return self._cache[i]

    def rel(self, root: Path) -> str:
        return str(self.folder.relative_to(root)) if self.folder.is_relative_to(root) else str(self.folder)


def find_series(src: Path, skips: Skips) -> list[Series]:
    """Every CT series under `src` (folders holding .dcm files), in patient and folder order."""
    from ctnodule.errors import DataError

    if not src.is_dir():
        raise DataError("LIDC source folder not found", src)
    folders = sorted({p.parent for p in src.rglob("*.dcm")})
    found = []
    for folder in folders:
        found.extend(_read_folder(folder, skips))
    return sorted(found, key=lambda s: (s.patient_id, s.study_uid, s.uid))


def _read_folder(folder: Path, skips: Skips) -> list[Series]:
    out = []
    for uid, headers in scan_headers(folder, skips.add).items():
        items = []
        for h in headers:
            orient = [round(float(v)) for v in h.orientation]
            if orient != [1, 0, 0, 0, 1, 0]:
                skips.add(h.path, f"not an axial slice in standard orientation (ImageOrientationPatient {orient})")
                continue
            items.append((float(h.position[2]), h.path, h.ds))
        if not items:
            continue
        zs = np.array([t[0] for t in items])
        dup = np.r_[False, np.diff(zs) < 1e-3]
        for z, path, _ in (t for t, d in zip(items, dup) if d):
            skips.add(path, f"second slice at z = {z:g} mm in the series; the first is used")
        items = [t for t, d in zip(items, dup) if not d]
        zs = zs[~dup]
        head = items[0][2]
        gaps = np.diff(zs)
        thickness = float(np.median(gaps)) if gaps.size else float(getattr(head, "SliceThickness", 1.0) or 1.0)
        xmls = sorted(folder.glob("*.xml"))
        out.append(Series(
            folder=folder, uid=uid, study_uid=str(getattr(head, "StudyInstanceUID", "")),
            patient_id=str(getattr(head, "PatientID", "") or folder.parents[1].name),
            files=[t[1] for t in items], z=zs,
            spacing=tuple(float(s) for s in head.PixelSpacing), shape=(int(head.Rows), int(head.Columns)),
            thickness=round(thickness, 4), xml=_matching_xml(xmls, uid),
        ))
    return out


def _matching_xml(xmls: list[Path], uid: str) -> Path | None:
    """The reader XML of this series (it names the SeriesInstanceUID); the only XML if it names none."""
    for path in xmls:
        head = path.read_text(encoding="utf-8", errors="replace")[:4000]
        if uid in head:
            return path
    return xmls[0] if len(xmls) == 1 and "SeriesInstanceUid" not in xmls[0].read_text(errors="replace")[:4000] else None
