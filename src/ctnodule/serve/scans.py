"""Opening a CT for the scan view: a path under an allowed root, an uploaded file, or the phantom.

Paths are resolved (symlinks followed) before they are checked against the roots, so `..`, an absolute
path elsewhere or a link out of a root is refused whatever it is spelt like. Uploads are NIfTI, NRRD or a
zip of one DICOM series; a zip is unpacked member by member with every name checked (no absolute names,
no `..`) and the unpacked total bounded, so a zip bomb or a zip-slip name ends as a clear error.
Errors name the upload by the name it was sent under, never the server's temporary folder.
"""

from __future__ import annotations

import collections
import dataclasses
import shutil
import threading
import uuid
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ctnodule.data.volume import Volume, read_volume
from ctnodule.errors import ConfigError, DataError

#: what the file chooser and the upload accept
VOLUME_SUFFIXES = (".nii", ".nii.gz", ".nrrd")
UPLOAD_SUFFIXES = (*VOLUME_SUFFIXES, ".zip")
#: scans kept in memory at once (a 512 x 512 x 300 scan is 150 MB of int16); the oldest goes first
KEEP_SCANS = 3


class Forbidden(ConfigError):
    """A path outside every allowed root (HTTP 403)."""


@dataclasses.dataclass
class Scan:
    """An opened CT: the volume, what the page calls it, and known nodule centres (phantom only)."""

    id: str
    name: str
    volume: Volume
    synthetic: bool = False
    candidates: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def info(self) -> dict[str, Any]:
        v = self.volume
        i, j, k = v.shape_ijk
        zs = v.to_world(np.stack([np.zeros(k), np.zeros(k), np.arange(k)], axis=1))[:, 2]
        return {"id": self.id, "name": self.name, "shape": [i, j, k], "spacing": list(v.spacing),
                "z_mm": [round(float(z), 2) for z in zs], "axial": v.axial, "synthetic": self.synthetic,
                # radiological display: the patient's right on the screen's left, anterior up (LPS: +x is left)
                "flip_x": bool(v.direction[0, 0] < 0), "flip_y": bool(v.direction[1, 1] < 0),
                "candidates": self.candidates, "series_uid": v.series_uid}


class ScanStore:
    """The scans this process has open, by id; the oldest is dropped beyond `keep`."""

    def __init__(self, keep: int = KEEP_SCANS):
        self.keep = keep
        self._scans: collections.OrderedDict[str, Scan] = collections.OrderedDict()
        self._lock = threading.Lock()

    def add(self, name: str, volume: Volume, synthetic: bool = False,
            candidates: Sequence[dict[str, Any]] = ()) -> Scan:
        scan = Scan(uuid.uuid4().hex[:12], name, volume, synthetic, list(candidates))
        with self._lock:
            self._scans[scan.id] = scan
            while len(self._scans) > self.keep:
                self._scans.popitem(last=False)
        return scan

    def get(self, scan_id: str) -> Scan | None:
        with self._lock:
            return self._scans.get(scan_id)


def inside_roots(path: str, roots: Sequence[Path]) -> Path:
    """`path` resolved, if it lies under one of `roots`; `Forbidden` otherwise (also when no root is set)."""
    if not roots:
        raise Forbidden("opening files by path is off: start `ctnodule serve` with --root DIR to allow a folder")
    raw = Path(path).expanduser()
    candidates = [raw] if raw.is_absolute() else [root / raw for root in roots]
    for candidate in candidates:
        resolved = candidate.resolve()
        if any(resolved == r or resolved.is_relative_to(r) for r in roots):
            return resolved
    raise Forbidden(f"{path}: outside the allowed roots ({', '.join(map(str, roots))})")


def browse(path: str, roots: Sequence[Path]) -> dict[str, Any]:
    """The sub-folders and volume files of a folder under a root (the roots themselves for "")."""
    if not path:
        return {"path": "", "parent": None, "entries": [{"name": str(r), "path": str(r), "kind": "dir"} for r in roots]}
    folder = inside_roots(path, roots)
    if not folder.is_dir():
        raise DataError("not a folder", path)
    entries = []
    for p in sorted(folder.iterdir(), key=lambda p: p.name.lower()):
        if p.name.startswith("."):
            continue
        if p.is_dir():
            entries.append({"name": p.name, "path": str(p), "kind": "dir",
                            "dicom": any(True for _ in zip(range(1), p.glob("*.dcm")))})
        elif p.name.lower().endswith(VOLUME_SUFFIXES):
            entries.append({"name": p.name, "path": str(p), "kind": "file"})
    parent = str(folder.parent) if folder not in roots else ""
    return {"path": str(folder), "parent": parent, "entries": entries,
            "dicom": any(True for _ in zip(range(1), folder.glob("*.dcm")))}


def open_path(path: str, roots: Sequence[Path], series_uid: str | None = None) -> Volume:
    """A DICOM series folder, NIfTI or NRRD volume under an allowed root."""
    return read_volume(inside_roots(path, roots), series_uid or None)


def upload_name(name: str) -> str:
    """The uploaded file's base name, checked for a suffix we can read."""
    base = Path(str(name).replace("\\", "/")).name
    if not base.lower().endswith(UPLOAD_SUFFIXES):
        raise DataError(f"{base or '(no name)'}: upload a NIfTI (.nii, .nii.gz), NRRD (.nrrd) or a .zip of one "
                        "DICOM series")
    return base


def read_upload(saved: Path, name: str, max_unpacked: int, series_uid: str | None = None) -> Volume:
    """The volume in an uploaded file saved at `saved` (sent as `name`) in a temporary folder of its own, where
    a zip is unpacked too; errors name `name`, never that folder."""
    try:
        if name.lower().endswith(".zip"):
            folder = unzip_series(saved, saved.parent / "unzipped", max_unpacked)
            volume = read_volume(folder, series_uid or None)
        else:
            target = saved.with_name("upload-" + name)  # readers go by the suffix
            saved.rename(target)
            volume = read_volume(target)
    except DataError as exc:
        raise DataError(_without(str(exc), saved.parent), name) from exc
    volume.source = Path(name)
    return volume


def unzip_series(archive: Path, out: Path, max_unpacked: int) -> Path:
    """Unpack a zip safely into `out`; the folder that holds its DICOM files."""
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as exc:
        raise DataError("not a readable zip file") from exc
    with zf:
        members = [m for m in zf.infolist() if not m.is_dir()]
        total = sum(m.file_size for m in members)
        if total > max_unpacked:
            raise DataError(f"the zip unpacks to {total / 2**20:.0f} MB, more than the {max_unpacked / 2**20:.0f} MB "
                            "allowed; upload one series")
        for m in members:
            parts = Path(m.filename.replace("\\", "/")).parts
            if m.filename.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
                raise DataError(f"zip member {m.filename!r} points outside the archive; refused")
            target = out.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(m) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    folders = sorted({p.parent for p in out.rglob("*") if p.is_file() and not p.name.startswith(".")
                      and not p.name.lower().endswith((".xml", ".txt", ".csv", ".json"))})
    with_dcm = [f for f in folders if any(f.glob("*.dcm"))]
    folders = with_dcm or folders
    if not folders:
        raise DataError("the zip holds no files")
    if len(folders) > 1:
        names = ", ".join(f.relative_to(out).as_posix() or "." for f in folders[:5])
        raise DataError(f"the zip holds DICOM files in {len(folders)} folders ({names}); zip one series")
    return folders[0]


def phantom_scan(seed: int = 0, n_slices: int = 96, spacing: float = 0.7, thickness: float = 1.25,
                 scores: Sequence[int] = (2, 4, 5)) -> tuple[Volume, list[dict[str, Any]]]:
    """A synthetic 512 x 512 x `n_slices` CT from the phantom (`ctnodule.data.phantom`) with one nodule per
    score, all inside the volume, their centres (voxel) for the page to mark, the score they were drawn with and
    the diameter of their drawn mask's largest section."""
    from ctnodule.data.phantom import PhantomPatient, place_nodules, render_volume

    rng = np.random.default_rng(seed)
    patient = PhantomPatient(rng, spacing, [])
    nodules = place_nodules(rng, patient, list(scores))
    mid = float(np.mean([n.centre[2] for n in nodules]))
    z0 = mid - n_slices * thickness / 2
    margin = 6.0 * thickness
    patient.nodules = [dataclasses.replace(n, centre=(n.centre[0], n.centre[1],
                                                      float(np.clip(n.centre[2], z0 + margin,
                                                                    z0 + (n_slices - 1) * thickness - margin))))
                       for n in nodules]
    hu, labels = render_volume(patient, z0, n_slices, thickness)
    half = hu.shape[1] / 2
    volume = Volume(hu=hu, spacing=(spacing, spacing, thickness), origin=np.array([-half * spacing, -half * spacing, z0]),
                    direction=np.eye(3), source=Path("phantom"), series_uid="", patient_id="PHANTOM")
    cands = []
    for n, spec in enumerate(patient.nodules, start=1):
        world = (spec.centre[1], spec.centre[0], spec.centre[2])  # (x, y, z) = (col mm, row mm, z)
        i, j, k = volume.to_voxel(world)
        largest = float((labels == n).sum(axis=(1, 2)).max()) * spacing**2  # mm^2, as the mask diameter is measured
        cands.append({"name": f"nodule {n}", "i": round(float(i), 1), "j": round(float(j), 1), "k": round(float(k), 1),
                      "drawn_score": spec.malignancy, "drawn_diameter_mm": round(2 * np.sqrt(largest / np.pi), 1)})
    return volume, cands


def _without(text: str, folder: Path) -> str:
    """`text` with the server's temporary `folder` (and anything under it) left out."""
    return text.replace(str(folder) + "/", "").replace(str(folder), "upload")
