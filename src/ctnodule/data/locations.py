"""Nodule locations: a point in world mm, a voxel index, or a LUNA16-layout candidates CSV.

A candidates file has the columns `seriesuid, coordX, coordY, coordZ` (world mm, LPS, as in LUNA16's
candidates.csv and annotations.csv); further columns (diameter_mm, class, ...) are kept but never used
as model input.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ctnodule.atomic import atomic_path
from ctnodule.data.volume import Volume
from ctnodule.errors import ConfigError, DataError

CANDIDATE_COLUMNS = ["seriesuid", "coordX", "coordY", "coordZ"]


@dataclasses.dataclass(frozen=True)
class Location:
    """One nodule to predict: a name for the output and the point in world mm (LPS)."""

    name: str
    world: tuple[float, float, float]


def parse_triple(text: str, option: str) -> tuple[float, float, float]:
    """`"X,Y,Z"` -> three floats; the error names the option and the expected form."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 3 or not all(np.isfinite(values)):
        raise ConfigError(f"{option} {text!r}: expected three numbers separated by commas, e.g. -80.5,42,-117")
    return values  # type: ignore[return-value]


def at_world(text: str) -> Location:
    """`--at X,Y,Z` (world mm)."""
    xyz = parse_triple(text, "--at")
    return Location(f"at_{_fmt(xyz)}", xyz)


def at_voxel(volume: Volume, text: str) -> Location:
    """`--at-voxel i,j,k` (column, row, slice; 0-based), converted to world mm."""
    ijk = parse_triple(text, "--at-voxel")
    return Location(f"voxel_{_fmt(ijk)}", tuple(float(v) for v in volume.to_world(ijk)))


def read_candidates(path: str | Path, series_uid: str | None = None) -> list[Location]:
    """The rows of a LUNA16-layout CSV for one series (all rows when the file names only one series).

    `series_uid`: the volume's series (DICOM) or `--series`; a NIfTI/NRRD volume has none, so a file
    naming several series then needs `--series`.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("candidates file not found", path)
    try:
        frame = pd.read_csv(path, dtype={"seriesuid": str})
    except Exception as exc:
        raise DataError(f"unreadable CSV ({exc})", path) from exc
    missing = [c for c in CANDIDATE_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"missing column(s) {missing}; expected the LUNA16 layout "
                        f"{','.join(CANDIDATE_COLUMNS)}[,...]", path)
    coords = frame[CANDIDATE_COLUMNS[1:]].apply(pd.to_numeric, errors="coerce")
    bad = ~np.isfinite(coords.to_numpy(float)).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"coordX/coordY/coordZ must be numbers, got {frame.iloc[i][CANDIDATE_COLUMNS[1:]].tolist()}",
                        path, i + 2)
    uids = frame["seriesuid"].astype(str).str.strip()
    if series_uid is None:
        if uids.nunique() > 1:
            raise DataError(f"candidates for {uids.nunique()} series ({', '.join(sorted(uids.unique())[:5])}"
                            f"{', ...' if uids.nunique() > 5 else ''}); choose one with --series UID", path)
        keep = np.ones(len(frame), bool)
    else:
        keep = (uids == series_uid).to_numpy()
        if not keep.any():
            raise DataError(f"no row for series {series_uid}; the file names {', '.join(sorted(uids.unique())[:5])}",
                            path)
    return [Location(f"cand{int(i) + 1}", tuple(float(v) for v in coords.iloc[i]))
            for i in np.flatnonzero(keep)]


def write_candidates(path: str | Path, series_uid: str, points: Sequence[tuple[float, float, float]]) -> Path:
    """Write points as a LUNA16-layout CSV (atomically)."""
    frame = pd.DataFrame([{"seriesuid": series_uid, "coordX": x, "coordY": y, "coordZ": z}
                          for x, y, z in points], columns=CANDIDATE_COLUMNS)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6f")
    return Path(path)


def _fmt(values: Sequence[float]) -> str:
    return "_".join(f"{v:g}" for v in values)
