"""Find the nodule on a full slice, segment it, and cut the nodule-view sample around it (find-then-classify).

A full 512x512 slice is mostly body wall, mediastinum and table; a nodule model needs the nodule. `find_nodule`
turns a full-view `Slice` (HU, a 2.5D stack or one plane) into the sample a nodule-view model judges, using
nothing of the input's own mask or manifest position (they may be absent; they are dropped):

1. the lungs: `lung_mask_array` (watershed on HU markers) on the centre plane; no lungs -> `DataError`;
2. candidates: bright round blobs inside the lungs, scored by the weaker of the two Hessian curvatures over
   nodule radii `radii_mm` on the mean of the context planes (a nodule persists across neighbouring slices,
   an oblique vessel moves and is smeared out; a vessel bends in one direction only). Outside the lungs is
   set to air first, so the chest wall and the mediastinum give no response, while a juxta-pleural nodule
   (the lung mask takes it back in) stays a bump;
3. segmentation: `segment_nodule` (issue 12's seed-point segmentation) on the stack, seeded at each candidate
   in score order until one gives a nodule of at least `min_diameter_mm` (`max_tries` at most); none ->
   `DataError` (a reported outcome, never a silent guess);
4. the sample: `nodule_sample` cuts it like the LIDC VOI export cuts its crops (the found mask on the centre
   plane), and its meta carries the FOUND geometry (`mask_diameter_mm`, bbox, centre, ...) plus where it was
   found in the full slice (`found_r`, `found_c`, `found_score`, `found_crop_r0/c0`, `found_rank`).

`size_power` and `isolation_power` were chosen among 7 settings on 80 composite slices (every 10th from the
5th), the in-nodule rate moving 33-47 of 80; the benchmark reports all 798.

Why classical: no detector weights may be downloaded here, 20 real full slices cannot train one, and each part
can be checked on its own (`bench/bench_find_crop.py` prints how often the found point lies in the true nodule).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi

from ctnodule.data.slice import Slice
from ctnodule.errors import DataError
from ctnodule.preprocess.lungmask import lung_mask_array
from ctnodule.preprocess.segment import nodule_sample, segment_nodule

#: manifest columns that describe the nodule's true position, outline or size (the LIDC and composite
#: imports'): never read, dropped from the output
TRUTH_KEYS = ("diameter_mm", "juxta_pleural", "level_shift_hu", "scale")
TRUTH_PREFIXES = ("bbox_", "centre_", "mask_", "crop_", "nodule_mask_", "seam_grad", "edge_grad")
#: the meta key every found sample carries: a sample that has it is not searched again
FOUND_KEY = "found_r"
#: z spacing assumed when the manifest has no `slice_thickness` (the LIDC median, 2.5 mm)
DEFAULT_THICKNESS_MM = 2.5


@dataclasses.dataclass
class Candidate:
    """A blob in the lungs: centre (row, col) in the full slice's pixels, LoG score, blob radius (mm)."""

    r: int
    c: int
    score: float
    radius_mm: float


def candidates(stack: np.ndarray, spacing: tuple[float, float], lung: np.ndarray,
               radii_mm: Sequence[float] = (2.5, 3.5, 5.0, 7.0, 10.0, 14.0), size_power: float = 0.25,
               min_score: float = 0.05, border_mm: float = 1.5, isolation_power: float = 4.0,
               max_candidates: int = 20) -> list[Candidate]:
    """Bright round blobs inside `lung` of a (k, H, W) HU `stack` (or one (H, W) plane), best first.

    Per radius r (sigma = r / sqrt 2), the Hessian of the Gaussian-smoothed image (in [0, 1] for -1000..0 HU)
    gives two curvatures; a bright blob bends down in both directions, a vessel in one only, so the score is
    the weaker downward curvature (scale-normalised, sigma^2 * max(0, -lambda_max)), times
    (r / 5 mm)^`size_power` (vessel cross-sections are small; nodules mostly are not), maximised over
    `radii_mm`. Local maxima inside `lung` above `min_score` are kept. Pixels within `border_mm` of the
    lung's edge are skipped: there the lung mask cuts through tissue and leaves half-blobs.

    Each peak's score is then multiplied by its isolation^`isolation_power`: the share of aerated lung
    (< -500 HU, inside `lung`) on a ring 2-5 mm outside the blob. A nodule in open lung is ringed by air
    (~0.9), a vessel crosses its ring twice (~0.7), a juxta-pleural nodule touches the wall (~0.5), and the
    hilum, which the lung mask's closing takes in, is ringed by the mediastinum (< 0.4).
    """
    planes = stack if stack.ndim == 3 else stack[None]
    img = np.clip((planes.astype(np.float32).mean(axis=0) + 1000.0) / 1000.0, 0.0, 1.0)
    lung = np.asarray(lung, bool)
    img = np.where(lung, img, 0.0).astype(np.float32)
    px = math.sqrt(spacing[0] * spacing[1])
    best = np.full(img.shape, -np.inf, np.float32)
    best_r = np.zeros(img.shape, np.float32)
    for r in radii_mm:
        sigma = r / math.sqrt(2.0) / np.asarray(spacing, float)
        hrr = ndi.gaussian_filter(img, sigma, order=(2, 0))
        hcc = ndi.gaussian_filter(img, sigma, order=(0, 2))
        hrc = ndi.gaussian_filter(img, sigma, order=(1, 1))
        lam_max = (hrr + hcc) / 2 + np.sqrt(((hrr - hcc) / 2) ** 2 + hrc ** 2)
        resp = float(np.prod(sigma)) * np.maximum(0.0, -lam_max) * (r / 5.0) ** size_power
        better = resp > best
        best[better], best_r[better] = resp[better], r
    inner = ndi.distance_transform_edt(lung) * px > border_mm
    peaks = (best == ndi.maximum_filter(best, size=max(3, round(2.0 / px) * 2 + 1))) & inner & (best > min_score)
    rows, cols = np.nonzero(peaks)
    air = lung & (planes[planes.shape[0] // 2] < -500)
    found = []
    for i in np.argsort(-best[rows, cols], kind="stable")[:4 * max_candidates]:
        r, c, rad = int(rows[i]), int(cols[i]), float(best_r[rows[i], cols[i]])
        score = float(best[r, c]) * _isolation(air, r, c, rad, spacing) ** isolation_power
        found.append(Candidate(r, c, score, rad))
    return sorted(found, key=lambda k: -k.score)[:max_candidates]


def _isolation(air: np.ndarray, r: int, c: int, radius_mm: float, spacing: tuple[float, float]) -> float:
    """Share of aerated lung on the ring 2-5 mm outside a blob of `radius_mm` centred at (r, c)."""
    outer = radius_mm + 5.0
    hr, hc = int(np.ceil(outer / spacing[0])), int(np.ceil(outer / spacing[1]))
    r0, r1, c0, c1 = max(r - hr, 0), min(r + hr + 1, air.shape[0]), max(c - hc, 0), min(c + hc + 1, air.shape[1])
    yy, xx = np.mgrid[r0:r1, c0:c1]
    d = np.hypot((yy - r) * spacing[0], (xx - c) * spacing[1])
    ring = (d >= radius_mm + 2.0) & (d <= outer)
    return float(air[r0:r1, c0:c1][ring].mean()) if ring.any() else 0.0


def find_nodule(s: Slice, *, max_tries: int = 5, min_diameter_mm: float = 3.0, context: int = 1,
                **candidate_params) -> Slice:
    """The nodule-view sample of full slice `s` (see the module docstring); `DataError` naming the sample
    when it has no lungs or no candidate that segments as a nodule."""
    sid = s.meta.get("sample_id", "?")
    stack = s.array if s.array.ndim == 3 else s.array[None]
    centre = stack.shape[0] // 2
    plane = stack[centre]
    lung = lung_mask_array(plane, s.spacing).astype(bool)
    if not lung.any():
        raise DataError(f"sample {sid!r}: no lungs found on this slice (is it a chest CT slice in HU?); "
                        "no nodule can be found on it")
    found = candidates(stack, s.spacing, lung, **candidate_params)
    if not found:
        raise DataError(f"sample {sid!r}: no nodule candidate in the lungs (nothing blob-like denser than "
                        "lung); this slice shows no nodule to classify")
    thickness = _thickness(s)
    spacing3 = (thickness, float(s.spacing[0]), float(s.spacing[1]))
    for rank, cand in enumerate(found[:max_tries]):
        try:
            seg = segment_nodule(stack, spacing3, (centre, cand.r, cand.c), min_diameter_mm=min_diameter_mm)
        except DataError:
            continue
        mask = np.zeros_like(seg.mask)
        mask[centre] = seg.mask[centre]
        if not mask[centre, cand.r, cand.c] and not _near(mask[centre], cand, s.spacing, cand.radius_mm):
            continue  # the segmentation ran off to a neighbouring structure
        area_mm2 = float(mask[centre].sum()) * s.spacing[0] * s.spacing[1]
        if 2.0 * math.sqrt(area_mm2 / math.pi) < min_diameter_mm:
            continue
        out = nodule_sample(stack, spacing3, mask, view="nodule", context=context)
        meta = without_truth(s.meta)
        meta.update(out.meta)
        meta.update({"view": "nodule", "found_r": cand.r, "found_c": cand.c, "found_score": round(cand.score, 4),
                     "found_rank": rank, "found_crop_r0": out.meta["crop_r0"], "found_crop_c0": out.meta["crop_c0"],
                     "full_rows": int(plane.shape[0]), "full_cols": int(plane.shape[1])})
        array = out.array if s.array.ndim == 3 else out.array[centre]
        return out.replace(array=array, meta=meta)
    raise DataError(f"sample {sid!r}: none of the {min(len(found), max_tries)} best candidates in the lungs "
                    f"segments as a nodule of at least {min_diameter_mm:g} mm; no nodule found on this slice")


def truth_sample(s: Slice, context: int = 1) -> Slice:
    """The nodule-view sample cut around full slice `s`'s OWN mask, exactly as `find_nodule` cuts around a
    found one: for training a find-then-classify model on the true nodules (`find: truth`), never for
    prediction. `DataError` when `s` has no mask."""
    if s.mask is None or not np.any(s.mask):
        raise DataError(f"sample {s.meta.get('sample_id', '?')!r} has no nodule mask to cut the true crop around")
    stack = s.array if s.array.ndim == 3 else s.array[None]
    centre = stack.shape[0] // 2
    mask = np.zeros(stack.shape, bool)
    mask[centre] = np.asarray(s.mask).astype(bool)
    out = nodule_sample(stack, (_thickness(s), float(s.spacing[0]), float(s.spacing[1])), mask, view="nodule",
                        context=context)
    meta = without_truth(s.meta)
    meta.update(out.meta, view="nodule")
    return out.replace(array=out.array if s.array.ndim == 3 else out.array[centre], meta=meta)


def without_truth(meta: dict) -> dict:
    """`meta` without the columns that give away where the nodule is or how large it is."""
    return {k: v for k, v in meta.items() if k not in TRUTH_KEYS and not k.startswith(TRUTH_PREFIXES)}


def _thickness(s: Slice) -> float:
    try:
        t = float(s.meta.get("slice_thickness"))
    except (TypeError, ValueError):
        return DEFAULT_THICKNESS_MM
    return t if np.isfinite(t) and t > 0 else DEFAULT_THICKNESS_MM


def _near(mask: np.ndarray, cand: Candidate, spacing: tuple[float, float], radius_mm: float) -> bool:
    """Does `mask` come within `radius_mm` of the candidate's centre?"""
    if not mask.any():
        return False
    dist = ndi.distance_transform_edt(~mask, sampling=spacing)
    return bool(dist[cand.r, cand.c] <= radius_mm)


@dataclasses.dataclass
class NoduleFinder:
    """`find_nodule` with fixed parameters over many slices: what a find-then-classify model applies before
    its nodule model. Stateless (nothing fitted), so its parameters are all a run folder needs to keep."""

    max_tries: int = 5
    min_diameter_mm: float = 3.0

    def get_params(self) -> dict:
        return dataclasses.asdict(self)

    def __call__(self, slices: Sequence[Slice]) -> list[Slice]:
        """The found nodule samples, in order; `DataError` listing every sample where none was found."""
        out, missing = [], []
        for s in slices:
            try:
                out.append(find_nodule(s, max_tries=self.max_tries, min_diameter_mm=self.min_diameter_mm))
            except DataError as exc:
                missing.append(str(exc))
        if missing:
            raise DataError(f"no nodule found on {len(missing)} of {len(slices)} full slice(s): {missing[0]}"
                            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
        return out

    def try_each(self, slices: Sequence[Slice]) -> list[Slice | str]:
        """Per slice: the found sample, or the reason none was found (for CV and the benchmark, which count
        misses instead of stopping)."""
        out: list[Slice | str] = []
        for s in slices:
            try:
                out.append(find_nodule(s, max_tries=self.max_tries, min_diameter_mm=self.min_diameter_mm))
            except DataError as exc:
                out.append(str(exc))
        return out
