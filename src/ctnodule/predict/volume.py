"""Predict on a whole CT: a DICOM series folder or a NIfTI/NRRD volume plus where the nodules are.

Locations: `--at X,Y,Z` (world mm, LPS: the DICOM patient frame and LUNA16's), `--at-voxel i,j,k`
(column, row, slice), `--candidates CSV` (LUNA16 layout, many nodules), or `--mask M` (a 3D nodule mask
on the volume's grid: each connected piece is a nodule, or the piece at each given location). Without a
mask each location is segmented automatically (`ctnodule.preprocess.segment`); the sample is then cut
the way training samples were, so the run's own preprocessing, channels (2.5D) and TTA apply.

Nothing is written here: `predict_volume` returns the rows and the samples, so a bad input (a point
outside the volume, in air or bone, a broken series) is one `DataError` before any file exists.
`ctnodule.explain.ct.predict_ct` adds the CSV and one PNG per nodule (contour; Grad-CAM with --explain).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ctnodule.data.locations import Location, at_voxel, at_world, read_candidates
from ctnodule.data.slice import Slice
from ctnodule.data.volume import Volume, read_volume
from ctnodule.errors import ConfigError, DataError
from ctnodule.predict.apply import prediction_rows
from ctnodule.preprocess.segment import NoduleMask, nodule_sample, segment_nodule

if TYPE_CHECKING:  # the CLI routes inputs with is_volume: that must not load torch (bundles run without it)
    from ctnodule.predict.run import Predictor


def is_volume(path: str | Path) -> bool:
    """A DICOM series folder or a 3D NIfTI/NRRD file (not a slice dataset folder)."""
    from ctnodule.data.manifest import MANIFEST

    path = Path(path)
    if path.is_dir():
        return not (path / MANIFEST).is_file()
    if not path.is_file():
        return False  # the slice readers say what is missing
    name = path.name.lower()
    try:
        if name.endswith((".nii", ".nii.gz")):
            import nibabel as nib

            return len(nib.load(str(path)).shape) == 3  # the header only
        if name.endswith(".nrrd"):
            import nrrd

            return int(nrrd.read_header(str(path))["dimension"]) == 3
    except Exception as exc:  # nibabel/pynrrd raise many types for a broken header
        raise DataError(f"not a readable image ({exc})", path) from exc
    return False


def predict_volume(
    predictor: Predictor,
    source: str | Path,
    *,
    at: Sequence[str] = (),
    at_voxels: Sequence[str] = (),
    candidates: str | Path | None = None,
    series_uid: str | None = None,
    mask: str | Path | None = None,
) -> tuple[pd.DataFrame, list[Slice]]:
    """Every located nodule of one CT volume: one row each (where, how it was segmented, its segmented
    diameter, the prediction) and the samples the model judged (with their 2D masks)."""
    volume = read_volume(source, series_uid)
    check_axial(volume)
    locations = [at_world(t) for t in at] + [at_voxel(volume, t) for t in at_voxels]
    if candidates is not None:
        locations += read_candidates(candidates, series_uid or volume.series_uid or None)
    sp = np.asarray(volume.spacing, float)[::-1]  # (k, j, i) mm
    nodules = _given_masks(volume, mask, locations) if mask is not None else _segmented(predictor, volume, locations)
    if not nodules:
        raise DataError("no nodule location given: pass --at X,Y,Z (world mm), --at-voxel i,j,k, "
                        "--candidates CSV or --mask", source)
    proba, slices = judge_outlines(predictor, volume.hu, sp, [outlines for _, _, outlines in nodules],
                                   [name for name, _, _ in nodules])
    return _table(predictor, proba, volume, nodules, slices), slices


def check_axial(volume: Volume) -> None:
    """The models were trained on axial slices: any other orientation is refused, never silently resliced."""
    if not volume.axial:
        raise DataError("the slices are not axial; the models were trained on axial slices", volume.source)


def outlines_at(predictor: Predictor, hu: np.ndarray, spacing: Sequence[float],
                seed: Sequence[float]) -> list[NoduleMask]:
    """The nodule at `seed` ((k, j, i) voxel) of the (k, j, i) volume `hu` with `spacing` (k, j, i) mm, outlined
    every way the run knows: the classical segmentation, and before it (the outline drawn and measured) its
    decision slice re-outlined by the run's learned segmenter when the run has one and that outline meets the
    classical mask (`method` says which made each). `DataError` when the point is in air, in bone or on no
    nodule."""
    found = segment_nodule(hu, spacing, seed)
    refined = None if predictor.segmenter is None else predictor.segmenter.refine(hu, spacing, seed, found.mask)
    if refined is None:
        return [found]
    return [dataclasses.replace(found, mask=refined[0], method="learned", slice_index=refined[1]), found]


def judge_outlines(predictor: Predictor, hu: np.ndarray, spacing: Sequence[float],
                   outlines: Sequence[Sequence[NoduleMask]], sample_ids: Sequence[str]) -> tuple[np.ndarray, list[Slice]]:
    """Class probabilities of each nodule (one row per entry of `outlines`), averaged over its outlines, and
    the sample of its first outline (the one drawn). Why the mean: the two automatic outlines err differently
    (the classical edge is a smoothed threshold, the learned one the readers' habit), and the shape descriptors
    are outline-sensitive; averaging the two judgements brings the automatic-mask CV AUC closest to the given
    masks' (`bench/bench_auto_masks.py`, way `both`)."""
    samples = [judged_sample(predictor, hu, spacing, o.mask, name, o.slice_index)
               for found, name in zip(outlines, sample_ids) for o in found]
    proba = predictor.predict_proba(samples)
    ends = np.cumsum([len(found) for found in outlines])
    starts = ends - np.array([len(found) for found in outlines])
    mean = np.stack([proba[a:b].mean(axis=0) for a, b in zip(starts, ends)])
    return mean, [samples[a] for a in starts]


def segmenter_label(outlines: Sequence[NoduleMask]) -> str:
    """How a nodule was outlined, as the CSV and the viewer say it: the methods of the outlines judged, the drawn
    one first (`learned+classical`, `classical`, `given`)."""
    return "+".join(o.method for o in outlines)


def judged_sample(predictor: Predictor, hu: np.ndarray, spacing: Sequence[float], mask: np.ndarray,
                  sample_id: str, slice_index: int | None = None) -> Slice:
    """The sample the model judges for a nodule `mask` in the (k, j, i) volume `hu` with `spacing` (k, j, i) mm:
    the nodule-view crop cut like a VOI (`nodule_sample`, on `slice_index` when given), its 2.5D stack kept
    only for a model that reads context. Shared by `predict_volume` and the viewer's click, so both judge
    the same pixels."""
    s = nodule_sample(hu, spacing, mask, view=predictor.view, slice_index=slice_index)
    array = s.array if predictor.channels == "context" else s.array[s.array.shape[0] // 2]
    return s.replace(array=array, meta={**s.meta, "sample_id": sample_id})


def _segmented(predictor: Predictor, volume: Volume,
               locations: list[Location]) -> list[tuple[str, tuple, list[NoduleMask]]]:
    """Each location checked against the volume and segmented; errors name the location."""
    sp = np.asarray(volume.spacing, float)[::-1]
    out = []
    for loc in locations:
        ijk = volume.to_voxel(loc.world)
        if not volume.contains(ijk):
            lo, hi = volume.world_bounds()
            raise DataError(f"location {loc.name} ({_xyz(loc.world)} mm, voxel i,j,k {_xyz(ijk)}) is outside the "
                            f"volume, which spans x {lo[0]:.1f}..{hi[0]:.1f}, y {lo[1]:.1f}..{hi[1]:.1f}, "
                            f"z {lo[2]:.1f}..{hi[2]:.1f} mm; world coordinates are LPS (DICOM), use --at-voxel "
                            "for array indices", volume.source)
        try:
            outlines = outlines_at(predictor, volume.hu, sp, ijk[::-1])
        except DataError as exc:
            raise DataError(f"location {loc.name} ({_xyz(loc.world)} mm): {exc}", volume.source) from exc
        out.append((loc.name, loc.world, outlines))
    return out


def _given_masks(volume: Volume, path: str | Path,
                 locations: list[Location]) -> list[tuple[str, tuple, list[NoduleMask]]]:
    """`--mask`: the nodule(s) of a 3D mask on the volume's grid (the piece at each location, or every
    connected piece when no location is given)."""
    from scipy import ndimage as ndi

    given = read_volume(path)
    if given.hu.shape != volume.hu.shape:
        raise DataError(f"mask shape {given.shape_ijk} (i, j, k) differs from the volume's {volume.shape_ijk}; "
                        "the mask must be on the volume's grid", path)
    labels, n = ndi.label(given.hu > 0)
    if n == 0:
        raise DataError("the mask is empty", path)
    out = []
    if not locations:
        for lab in range(1, n + 1):
            piece = labels == lab
            k, j, i = np.argwhere(piece).mean(axis=0)
            world = tuple(float(v) for v in volume.to_world((i, j, k)))
            out.append((f"mask{lab}", world, [NoduleMask(piece, (int(k), int(j), int(i)), float("nan"), float("nan"),
                                                         "given")]))
        return out
    near = ndi.distance_transform_edt(labels == 0, sampling=np.asarray(volume.spacing)[::-1],
                                      return_distances=False, return_indices=True)
    for loc in locations:
        i, j, k = np.round(volume.to_voxel(loc.world)).astype(int)
        if not volume.contains((i, j, k)):
            raise DataError(f"location {loc.name} ({_xyz(loc.world)} mm) is outside the volume", volume.source)
        lab = labels[tuple(int(near[a][k, j, i]) for a in range(3))]
        out.append((loc.name, loc.world, [NoduleMask(labels == lab, (k, j, i), float("nan"), float("nan"), "given")]))
    return out


def _table(predictor: Predictor, proba: np.ndarray, volume: Volume, nodules: list, slices: list[Slice]) -> pd.DataFrame:
    """One row per nodule: where it is, how it was segmented (`segmenter`: the outlines judged, the first one drawn
    and measured) and measured, then the prediction."""
    info = []
    for (name, world, outlines), s in zip(nodules, slices):
        i, j, k = volume.to_voxel(world)
        info.append({"x_mm": round(world[0], 2), "y_mm": round(world[1], 2), "z_mm": round(world[2], 2),
                     "i": round(float(i), 1), "j": round(float(j), 1), "k": round(float(k), 1),
                     "mask": "given" if outlines[0].method == "given" else "auto",
                     "segmenter": segmenter_label(outlines),
                     "slice_index": s.meta["slice_index"],
                     "diameter_mm": s.meta["mask_diameter_mm"], "volume_mm3": s.meta["mask_volume_mm3"]})
    head = pd.DataFrame({"source": str(volume.source), "series_uid": volume.series_uid}, index=range(len(slices)))
    rows = prediction_rows(predictor, proba, [n[0] for n in nodules], None)
    return pd.concat([rows[["sample_id"]], head, pd.DataFrame(info), rows.drop(columns="sample_id")], axis=1)


def _xyz(values: Sequence[float]) -> str:
    return ",".join(f"{float(v):.1f}" for v in values)


def check_location_options(at: Sequence[str], at_voxels: Sequence[str], candidates: object) -> None:
    """Location options only make sense with a volume input."""
    if at or at_voxels or candidates is not None:
        raise ConfigError("--at, --at-voxel and --candidates need a CT volume input (a DICOM series folder or a "
                          "3D NIfTI/NRRD file)")
