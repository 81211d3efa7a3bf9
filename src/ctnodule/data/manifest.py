"""The slice-dataset manifest: one CSV row per sample, its schema and its validation.

A dataset is a folder holding `manifest.csv` and the NRRD files its `path` column names (relative to
the folder). Required columns are the seed's; optional ones carry what a source gives (reader ratings,
diameter, nodule bbox in the full slice, 2.5D context stack, nodule mask). Unknown extra columns are
kept, so importers can add source-specific fields without a schema change.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ctnodule.atomic import atomic_path
from ctnodule.errors import DataError
from ctnodule.vocab import VIEWS

MANIFEST = "manifest.csv"

REQUIRED = ("sample_id", "patient_id", "nodule_id", "view", "path", "malignancy", "label_binary", "source")

#: Optional columns with a meaning every stage agrees on.
OPTIONAL = {
    "context_path": "NRRD (2k+1, H, W): the slice with its k neighbours each side, for 2.5D models",
    "mask_path": "NRRD (H, W) uint8: the nodule mask on this slice (1 = nodule)",
    "spacing_row": "pixel spacing along rows, mm (also in the NRRD header)",
    "spacing_col": "pixel spacing along columns, mm",
    "slice_thickness": "distance between neighbouring slices, mm",
    "diameter_mm": "nodule diameter as given by the source, mm",
    "bbox_r0": "nodule bbox in this slice: first row", "bbox_c0": "first column",
    "bbox_r1": "last row + 1", "bbox_c1": "last column + 1",
    "centre_r": "nodule centre row in this slice", "centre_c": "nodule centre column in this slice",
    "orig_rows": "rows of the slice the sample was taken from", "orig_cols": "its columns",
    "reader_ratings": "every reader's malignancy rating, ';'-separated",
    "n_readers": "number of readers who marked the nodule",
    "reader_match": "how reader_ratings were found: unique | nearest | ambiguous | none (VOI export)",
    "series_uid": "DICOM SeriesInstanceUID",
    "slice_z": "z position of the slice, mm (patient coordinates)",
    "synthetic": "1 for generated data (phantom, GAN), 0 for real scans",
}

#: `source` values of generated samples, and how pages name them (a row with `synthetic` = 1 counts too)
GENERATED_SOURCES = {"synthetic": "CT phantom", "phantom": "CT phantom", "cgan": "conditional GAN", "gan": "GAN",
                     "diffusion": "diffusion model",
                     "composite": "composite"}
#: `source` of lesion-insertion samples (`ctnodule import composite`): a real nodule in another patient's slice
COMPOSITE_SOURCE = "composite"


def synthetic_info(frame: pd.DataFrame) -> dict | None:
    """How much of a dataset is generated: {n_synthetic, n_samples, sources, n_composite} or None when every
    sample is a real scan (composites count as generated: their pixels were never acquired together;
    `n_composite` counts those made of real scans only, a composite of phantom data stays synthetic). Pages (`ctnodule.pages.synthetic_banner`) and run folders (config.yaml) carry it, so no
    number from a phantom, a GAN or a real+generated mix is ever shown as if it came from patients."""
    blank = pd.Series("", index=frame.index)
    source = frame.get("source", blank).astype(str).str.lower()
    flagged = pd.to_numeric(frame.get("synthetic", blank), errors="coerce") == 1
    generated = (flagged | source.isin(list(GENERATED_SOURCES))).to_numpy()
    if not generated.any():
        return None
    names = sorted({GENERATED_SOURCES.get(s, s) for s in source[generated]})
    return {"n_synthetic": int(generated.sum()), "n_samples": len(frame), "sources": names,
            "n_composite": int(((source == COMPOSITE_SOURCE) & ~flagged).sum())}


def read_manifest(root: str | Path) -> pd.DataFrame:
    """Read and validate `root/manifest.csv` (schema only; `validate_files` checks the arrays)."""
    root = Path(root)
    path = root / MANIFEST
    if not root.is_dir():
        raise DataError("dataset folder not found", root)
    if not path.is_file():
        raise DataError(f"no {MANIFEST} here; is this a slice dataset? (make one with `ctnodule import`)", root)
    try:
        frame = pd.read_csv(path, dtype={"sample_id": str, "patient_id": str, "nodule_id": str, "path": str})
    except Exception as exc:
        raise DataError(f"unreadable CSV ({exc})", path) from exc
    validate_manifest(frame, path)
    return frame


def validate_manifest(frame: pd.DataFrame, path: str | Path = MANIFEST) -> None:
    """Schema checks that need no pixel data. Rows are reported 1-based as in a spreadsheet (header = 1)."""
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise DataError(f"missing required column(s) {missing}; required: {list(REQUIRED)}", path)
    if frame.empty:
        raise DataError("the manifest has no rows (empty dataset)", path)
    for col in ("sample_id", "patient_id", "path"):
        bad = frame[col].isna() | (frame[col].astype(str).str.strip() == "")
        if bad.any():
            raise DataError(f"empty {col}", path, _row(frame, bad))
    dup = frame["sample_id"].duplicated(keep="first")
    if dup.any():
        sid = frame.loc[dup, "sample_id"].iloc[0]
        raise DataError(f"duplicate sample_id {sid!r}", path, _row(frame, dup))
    bad_view = ~frame["view"].isin(VIEWS)
    if bad_view.any():
        v = frame.loc[bad_view, "view"].iloc[0]
        raise DataError(f"unknown view {v!r}; expected one of {VIEWS}", path, _row(frame, bad_view))
    mal = pd.to_numeric(frame["malignancy"], errors="coerce")
    bad_mal = mal.isna() | ~mal.isin([1, 2, 3, 4, 5])
    if bad_mal.any():
        v = frame.loc[bad_mal, "malignancy"].iloc[0]
        raise DataError(f"malignancy {v!r} is outside 1..5", path, _row(frame, bad_mal))
    lb = pd.to_numeric(frame["label_binary"], errors="coerce")
    expected = (mal >= 4).astype(int)
    bad_lb = lb.isna() | (lb != expected)
    if bad_lb.any():
        i = bad_lb.to_numpy().nonzero()[0][0]
        raise DataError(
            f"label_binary {frame['label_binary'].iloc[i]!r} disagrees with malignancy "
            f"{frame['malignancy'].iloc[i]!r} (1-3 -> 0, 4-5 -> 1)", path, i + 2,
        )


def validate_files(root: str | Path, frame: pd.DataFrame) -> None:
    """Open every array the manifest names: present, 2D (context: 3D), finite. Raises on the first bad one."""
    from ctnodule.data.io import read_nrrd

    root = Path(root)
    for i, row in enumerate(frame.itertuples(index=False)):
        for col, ndim in (("path", 2), ("context_path", 3), ("mask_path", 2)):
            rel = getattr(row, col, None)
            if col != "path" and (rel is None or (isinstance(rel, float) and np.isnan(rel)) or rel == ""):
                continue
            file = root / str(rel)
            if not file.is_file():
                raise DataError(f"{col} file {rel!r} does not exist", root / MANIFEST, i + 2)
            array, _ = read_nrrd(file)
            if array.ndim != ndim:
                raise DataError(f"{col} array has shape {array.shape}; expected {ndim}D", file, i + 2)
            if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
                raise DataError("array contains NaN or infinite values", file, i + 2)


def write_manifest(root: str | Path, frame: pd.DataFrame) -> Path:
    """Validate and write `root/manifest.csv` atomically."""
    validate_manifest(frame, Path(root) / MANIFEST)
    with atomic_path(Path(root) / MANIFEST) as tmp:
        frame.to_csv(tmp, index=False)
    return Path(root) / MANIFEST


def _row(frame: pd.DataFrame, mask: pd.Series) -> int:
    return int(np.asarray(mask).nonzero()[0][0]) + 2
