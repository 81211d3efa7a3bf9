"""`ctnodule import folder SRC OUT --labels labels.csv`: a plain folder of NRRD slices + a CSV of labels.

This is the seed's own layout. The CSV needs `filename` (relative to SRC), `malignancy` (1..5),
`patient_id` and `view` (full|nodule); optional: `sample_id` (default: the file name without
extension), `nodule_id` (default: the sample id), `mask` (an NRRD mask file, same shape). Any other
column is carried into the manifest as it is. Every row is checked before anything is written; all
problems are listed together, each naming its CSV row (spreadsheet numbering, header = row 1) and file,
so one run shows everything to fix. `on_error="skip"` imports the good rows and reports the rest.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from ctnodule.data.checks import check_allow, check_ct_slice, fill_spacing
from ctnodule.data.importers.base import IMPORTERS, ImportReport, Skips, finish
from ctnodule.data.io import read_nrrd
from ctnodule.data.measure import mask_geometry
from ctnodule.data.writer import open_dataset
from ctnodule.errors import ConfigError, DataError
from ctnodule.vocab import VIEWS

REQUIRED = ("filename", "malignancy", "patient_id", "view")
#: manifest columns the importer computes itself; a CSV column of the same name would clash
_RESERVED = {"path", "label_binary", "source", "context_path", "mask_path", "spacing_row", "spacing_col"}


@IMPORTERS.register("folder")
def import_folder(
    out: str | Path,
    *,
    src: str | Path,
    labels: str | Path,
    on_error: str = "raise",
    spacing: float | None = None,
    allow: Collection[str] = (),
    force: bool = False,
    progress: bool = True,
) -> ImportReport:
    """Import the NRRD slices under `src` listed in the `labels` CSV.

    Each image is checked as a CT slice (`ctnodule.data.checks`): `spacing` (mm/px) is used for files whose
    header has none, `allow` lets through what the checks otherwise refuse ("0-255")."""
    if on_error not in ("raise", "skip"):
        raise ConfigError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    allow = check_allow(allow)
    started = time.perf_counter()
    src, labels = Path(src), Path(labels)
    table = read_labels(labels)
    if not src.is_dir():
        raise DataError("image folder not found", src)
    problems: dict[int, str] = {}
    loaded: dict[int, tuple[np.ndarray, tuple[float, float], np.ndarray | None]] = {}
    for i, row in tqdm(table.iterrows(), total=len(table), desc="folder", unit="slice", disable=not progress):
        try:
            loaded[i] = _load(src, row, spacing, allow)
        except DataError as exc:
            problems[i] = str(exc)
    for i, msg in _row_problems(table).items():
        problems[i] = f"{problems[i]}; {msg}" if i in problems else msg
    if problems and on_error == "raise":
        lines = [f"row {i + 2}: {msg}" for i, msg in sorted(problems.items())]
        more = f"\n... and {len(lines) - 20} more" if len(lines) > 20 else ""
        raise DataError(f"{len(lines)} invalid row(s):\n" + "\n".join(lines[:20]) + more, labels)
    skips = Skips()
    for i, msg in sorted(problems.items()):
        skips.add(f"{labels.name} row {i + 2}", msg)
    extra_cols = [c for c in table.columns if c not in (*REQUIRED, "sample_id", "nodule_id", "mask")]
    with open_dataset(out, force=force) as writer:
        for i, row in table.iterrows():
            if i in problems:
                continue
            array, spacing, mask = loaded[i]
            extra = {c: row[c] for c in extra_cols if row[c] != ""}
            if mask is not None and mask.any():
                extra.update(mask_geometry(mask, spacing))
            writer.add(array, spacing, sample_id=row["sample_id"], patient_id=row["patient_id"],
                       nodule_id=row["nodule_id"], view=row["view"], malignancy=int(row["malignancy"]),
                       source="folder", mask=mask, source_file=row["filename"],
                       orig_rows=array.shape[0], orig_cols=array.shape[1], **extra)
        return finish(writer, "folder", src, out, skips, started, labels=str(labels), on_error=on_error)


def read_labels(path: Path) -> pd.DataFrame:
    """The labels CSV with defaults filled in; a missing file or column is an error naming it."""
    if not path.is_file():
        raise DataError("labels CSV not found (pass --labels FILE)", path)
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as exc:
        raise DataError(f"unreadable CSV ({exc})", path) from exc
    table.columns = [c.strip() for c in table.columns]
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        raise DataError(f"missing column(s) {missing}; required: {list(REQUIRED)}", path)
    clash = sorted(_RESERVED & set(table.columns))
    if clash:
        raise DataError(f"column(s) {clash} are computed by the importer; rename or drop them", path)
    if table.empty:
        raise DataError("no rows", path)
    table = table.apply(lambda col: col.str.strip())
    if "sample_id" not in table.columns or (table["sample_id"] == "").all():
        table["sample_id"] = [Path(f).name.split(".")[0] for f in table["filename"]]
    if "nodule_id" not in table.columns:
        table["nodule_id"] = table["sample_id"]
    return table


def _row_problems(table: pd.DataFrame) -> dict[int, str]:
    problems: dict[int, str] = {}
    for i, row in table.iterrows():
        bad = []
        if row["malignancy"] not in {"1", "2", "3", "4", "5"}:
            bad.append(f"malignancy {row['malignancy']!r} is not an integer 1..5")
        if row["view"] not in VIEWS:
            bad.append(f"view {row['view']!r} is not one of {VIEWS}")
        if row["patient_id"] == "":
            bad.append("empty patient_id (splits group by patient, so every slice needs one)")
        if row["sample_id"] == "":
            bad.append("empty sample_id")
        if bad:
            problems[i] = f"{row['filename']}: " + "; ".join(bad)
    dup = table["sample_id"].duplicated(keep="first") & (table["sample_id"] != "")
    for i in np.flatnonzero(dup.to_numpy()):
        first = int(np.flatnonzero((table["sample_id"] == table["sample_id"].iloc[i]).to_numpy())[0]) + 2
        msg = f"{table['filename'].iloc[i]}: duplicate sample_id {table['sample_id'].iloc[i]!r} (first in row {first})"
        problems[int(i)] = problems[int(i)] + "; " + msg if int(i) in problems else msg
    return problems


def _load(src: Path, row: pd.Series, given_spacing: float | None, allow: Collection[str],
          ) -> tuple[np.ndarray, tuple[float, float], np.ndarray | None]:
    array, spacing = _read_2d(src, row["filename"], "image")
    spacing = fill_spacing(spacing, given_spacing, src / row["filename"])
    mask = None
    if row.get("mask", "") not in ("", None):
        mask, _ = _read_2d(src, row["mask"], "mask")
        if mask.shape != array.shape:
            raise DataError(f"mask {row['mask']} has shape {mask.shape}, image {array.shape}", src / row["filename"])
        mask = mask > 0
    array = _to_hu(array, src / row["filename"])
    check_ct_slice(array, src / row["filename"], allow)
    return array, spacing, mask


def _read_2d(src: Path, name: str, what: str) -> tuple[np.ndarray, tuple[float, ...]]:
    path = src / name
    if name == "":
        raise DataError(f"empty {what} file name")
    if not path.is_file():
        raise DataError(f"{what} file not found", path)
    if not path.name.lower().endswith(".nrrd"):
        raise DataError(f"{what} must be an NRRD slice in HU (.nrrd)", path)
    array, spacing = read_nrrd(path)
    if array.ndim == 3 and 1 in array.shape:
        array = array.reshape([s for s in array.shape if s != 1])
        spacing = spacing[-2:]
    if array.ndim != 2:
        raise DataError(f"{what} has shape {array.shape}; expected one 2D slice", path)
    return array, tuple(spacing[-2:])


def _to_hu(array: np.ndarray, path: Path) -> np.ndarray:
    """int16 HU: integers are kept, finite floats rounded; NaN/inf or values outside int16 are errors
    (8-bit images are refused by `check_ct_slice`)."""
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise DataError("image contains NaN or infinite values", path)
        array = np.round(array)
    if array.min() < -32768 or array.max() > 32767:
        raise DataError(f"values {array.min()}..{array.max()} do not fit int16 HU", path)
    return array.astype(np.int16)
