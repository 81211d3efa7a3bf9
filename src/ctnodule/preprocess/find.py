"""Find the nodule on a full slice, segment it, and cut the nodule-view sample around it (find-then-classify).

A full 512x512 slice is mostly body wall, mediastinum and table; a nodule model needs the nodule. `find_nodule`
turns a full-view `Slice` (HU, a 2.5D stack or one plane) into the sample a nodule-view model judges, using
nothing of the input's own mask or manifest position (they may be absent; they are dropped):

1. the lungs: `lung_mask_array` (watershed on HU markers) on the centre plane; no lungs -> `DataError`;
2. candidates: bright round blobs inside the lungs, scored by the weaker of the two Hessian curvatures over
   nodule radii `radii_mm` on the mean of the context planes (a nodule persists across neighbouring slices,
   an oblique vessel moves and is smeared out; a vessel bends in one direction only). Outside the lungs is
   set to air first, so the chest wall and the mediastinum give no response, while a juxta-pleural nodule
   (the lung mask takes it back in) stays a bump. Peaks are taken in space and scale (`blob_peaks`). Two
   sources (`candidates`): the `n_candidates` strongest on the solid window (-1000..0 HU), then the
   `n_ground_glass` strongest others on a ground-glass window (-1000..-500 HU), where a faint nodule is as
   contrasted as a vessel;
3. segmentation: `segment_nodule` (issue 12's seed-point segmentation) on the stack, seeded at each candidate
   in score order until one gives a nodule of at least `min_diameter_mm` (`max_tries` at most); none ->
   `DataError` (a reported outcome, never a silent guess). With a learned ranking (`ranker`, see
   `preprocess.rank`) every candidate of both sources is segmented and described (`survey`, `FEATURES`)
   and the ranker's favourite among those that segment as a nodule is taken;
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
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage as ndi

from ctnodule.data.slice import Slice, slice_thickness
from ctnodule.errors import DataError
from ctnodule.preprocess.lungmask import lung_mask_array
from ctnodule.preprocess.segment import nodule_sample, segment_nodule

if TYPE_CHECKING:  # rank.py builds on this module's candidates
    from ctnodule.preprocess.rank import CandidateRanker

#: manifest columns that describe the nodule's true position, outline or size (the LIDC and composite
#: imports'): never read, dropped from the output
TRUTH_KEYS = ("diameter_mm", "juxta_pleural", "level_shift_hu", "scale")
TRUTH_PREFIXES = ("bbox_", "centre_", "mask_", "crop_", "nodule_mask_", "seam_grad", "edge_grad")
#: the meta key every found sample carries: a sample that has it is not searched again
FOUND_KEY = "found_r"
#: a soft find's meta (`ranked_sample(top > 1)`): the runners-up's samples (on the found sample) and each
#: sample's share of the decision
RUNNERS_UP_KEY = "found_runners_up"
WEIGHT_KEY = "found_weight"
#: a soft find weighs its candidates by the ranker's scores squared: the ranker is fitted with balanced class
#: weights, so its scores overrate the runners-up; on the composite CV (top 3) power 1 lifted the binary AUC
#: 0.867 -> 0.868 and cost 0.030 QWK, power 2 0.877 and 0.013, power 4 0.877 and 0.006
SOFT_POWER = 2.0
#: z spacing assumed when the manifest has no `slice_thickness` (the LIDC median, 2.5 mm)
DEFAULT_THICKNESS_MM = 2.5


#: the two candidate sources' HU windows (mapped to [0, 1] before the blob filter): solid nodules and vessels
#: against lung on the full soft-tissue range; ground glass (-800..-300 HU) on a window that ends at -500 HU,
#: where a faint nodule has as much contrast as a vessel and its size tells them apart (size_power 0.5)
SOLID_WINDOW_HU = (-1000.0, 0.0)
GROUND_GLASS_WINDOW_HU = (-1000.0, -500.0)
GROUND_GLASS_SIZE_POWER = 0.5
#: a ground-glass candidate within this distance of a solid one is the same blob
SAME_BLOB_MM = 3.0


@dataclasses.dataclass
class Candidate:
    """A blob in the lungs: centre (row, col) in the full slice's pixels, score, blob radius (mm), and where
    it comes from (`source`: solid | ground_glass)."""

    r: int
    c: int
    score: float
    radius_mm: float
    blob: float = 0.0  # the solid window's Hessian blob strength at the point (before the isolation factor)
    isolation: float = 1.0  # share of aerated lung on the ring around the blob
    source: str = "solid"


def blob_response(stack: np.ndarray, spacing: tuple[float, float], lung: np.ndarray, radii_mm: Sequence[float],
                  size_power: float, window_hu: tuple[float, float]) -> np.ndarray:
    """(len(radii_mm), H, W) bright-blob strength of a (k, H, W) HU `stack` (or one plane) inside `lung`.

    The mean of the planes (a nodule persists across neighbouring slices, an oblique vessel moves and is
    smeared out) is mapped to [0, 1] over `window_hu` and set to 0 outside `lung` (the chest wall and the
    mediastinum give no response, a juxta-pleural nodule, which the lung mask takes back in, stays a bump).
    Per radius r (sigma = r / sqrt 2) the Hessian gives two curvatures; a bright blob bends down in both
    directions, a vessel in one only, so the strength is the weaker downward curvature, scale-normalised
    (sigma^2 * max(0, -lambda_max)), times (r / 5 mm)^`size_power`. Filtered on the lungs' bounding box
    only (outside it the image is 0 anyway): the same numbers at about half the cost."""
    planes = stack if stack.ndim == 3 else stack[None]
    lo, hi = window_hu
    img = np.clip((planes.astype(np.float32).mean(axis=0) - lo) / (hi - lo), 0.0, 1.0)
    img = np.where(lung, img, 0.0).astype(np.float32)
    out = np.zeros((len(radii_mm), *img.shape), np.float32)
    rows, cols = np.nonzero(lung)
    if rows.size == 0:
        return out
    pad = np.ceil(4 * max(radii_mm) / math.sqrt(2.0) / np.asarray(spacing, float)).astype(int) + 1
    box = (slice(max(rows.min() - pad[0], 0), rows.max() + pad[0] + 1),
           slice(max(cols.min() - pad[1], 0), cols.max() + pad[1] + 1))
    crop = img[box]
    for k, r in enumerate(radii_mm):
        sigma = r / math.sqrt(2.0) / np.asarray(spacing, float)
        hrr = ndi.gaussian_filter(crop, sigma, order=(2, 0), mode="constant")
        hcc = ndi.gaussian_filter(crop, sigma, order=(0, 2), mode="constant")
        hrc = ndi.gaussian_filter(crop, sigma, order=(1, 1), mode="constant")
        lam_max = (hrr + hcc) / 2 + np.sqrt(((hrr - hcc) / 2) ** 2 + hrc ** 2)
        out[k][box] = float(np.prod(sigma)) * np.maximum(0.0, -lam_max) * (r / 5.0) ** size_power
    return out


def blob_peaks(response: np.ndarray, radii_mm: Sequence[float], stack: np.ndarray, spacing: tuple[float, float],
               lung: np.ndarray, min_score: float = 0.05, border_mm: float = 1.5, isolation_power: float = 4.0,
               max_candidates: int = 20) -> list[Candidate]:
    """The blobs of a `blob_response`, best first: local maxima in space AND scale (a small nodule beside a
    larger vessel keeps its own peak at its own scale, where the maximum over scales took it into the
    vessel's), inside `lung` above `min_score`. Pixels within `border_mm` of the lung's edge are skipped:
    there the lung mask cuts through tissue and leaves half-blobs.

    Each peak's score is then multiplied by its isolation^`isolation_power`: the share of aerated lung
    (< -500 HU, inside `lung`) on a ring 2-5 mm outside the blob. A nodule in open lung is ringed by air
    (~0.9), a vessel crosses its ring twice (~0.7), a juxta-pleural nodule touches the wall (~0.5), and the
    hilum, which the lung mask's closing takes in, is ringed by the mediastinum (< 0.4). A peak within
    max(2 mm, half the larger radius) of a better one is the same blob and dropped."""
    planes = stack if stack.ndim == 3 else stack[None]
    px = math.sqrt(spacing[0] * spacing[1])
    size = max(3, round(2.0 / px) * 2 + 1)
    inner = ndi.distance_transform_edt(lung) * px > border_mm
    peaks = (response == ndi.maximum_filter(response, size=(3, size, size), mode="constant")) & inner[None] \
        & (response > min_score)
    ks, rows, cols = np.nonzero(peaks)
    values = response[ks, rows, cols]
    air = np.asarray(lung, bool) & (planes[planes.shape[0] // 2] < -500)
    scored = []
    for i in np.argsort(-values, kind="stable")[:6 * max_candidates]:
        r, c, rad = int(rows[i]), int(cols[i]), float(radii_mm[ks[i]])
        iso = _isolation(air, r, c, rad, spacing)
        scored.append(Candidate(r, c, float(values[i]) * iso ** isolation_power, rad, float(values[i]), iso))
    found: list[Candidate] = []
    for cand in sorted(scored, key=lambda k: -k.score):
        if all(_distance_mm(cand, k, spacing) > max(2.0, 0.5 * max(cand.radius_mm, k.radius_mm)) for k in found):
            found.append(cand)
            if len(found) == max_candidates:
                break
    return found


def candidates(stack: np.ndarray, spacing: tuple[float, float], lung: np.ndarray, *,
               radii_mm: Sequence[float] = (2.5, 3.5, 5.0, 7.0, 10.0, 14.0), size_power: float = 0.25,
               max_candidates: int = 20, n_ground_glass: int = 10, **peak_params) -> list[Candidate]:
    """The `max_candidates` strongest solid blobs inside `lung` of a (k, H, W) HU `stack`, best first, then
    up to `n_ground_glass` of the strongest ground-glass blobs that are none of them (farther than
    `SAME_BLOB_MM`). Every candidate's `blob` is the solid window's strength at its point (for the ranker,
    whichever source found it).

    Why two sources: a ground-glass nodule (-750..-400 HU) has a quarter of a solid one's contrast on the
    solid window and loses to vessel cross-sections; on the composite set the 15 solid candidates held the
    nodule on 61 % of texture-1 slices, 94 % of texture-5 ones. `size_power` favours larger blobs (vessel
    cross-sections are small, nodules mostly are not); `peak_params` go to `blob_peaks`."""
    solid_resp = blob_response(stack, spacing, lung, radii_mm, size_power, SOLID_WINDOW_HU)
    found = blob_peaks(solid_resp, radii_mm, stack, spacing, lung, max_candidates=max_candidates, **peak_params)
    if n_ground_glass > 0:
        gg_resp = blob_response(stack, spacing, lung, radii_mm, GROUND_GLASS_SIZE_POWER, GROUND_GLASS_WINDOW_HU)
        extra = [k for k in blob_peaks(gg_resp, radii_mm, stack, spacing, lung,
                                       max_candidates=max_candidates + 4 * n_ground_glass, **peak_params)
                 if all(_distance_mm(k, s, spacing) > SAME_BLOB_MM for s in found)]
        found += [dataclasses.replace(k, source="ground_glass") for k in extra[:n_ground_glass]]
    solid_best = solid_resp.max(axis=0)
    for k in found:
        k.blob = float(solid_best[k.r, k.c])
    return found


def _distance_mm(a: Candidate, b: Candidate, spacing: tuple[float, float]) -> float:
    return math.hypot((a.r - b.r) * spacing[0], (a.c - b.c) * spacing[1])


def _isolation(air: np.ndarray, r: int, c: int, radius_mm: float, spacing: tuple[float, float]) -> float:
    """Share of aerated lung on the ring 2-5 mm outside a blob of `radius_mm` centred at (r, c)."""
    outer = radius_mm + 5.0
    hr, hc = int(np.ceil(outer / spacing[0])), int(np.ceil(outer / spacing[1]))
    r0, r1, c0, c1 = max(r - hr, 0), min(r + hr + 1, air.shape[0]), max(c - hc, 0), min(c + hc + 1, air.shape[1])
    yy, xx = np.mgrid[r0:r1, c0:c1]
    d = np.hypot((yy - r) * spacing[0], (xx - c) * spacing[1])
    ring = (d >= radius_mm + 2.0) & (d <= outer)
    return float(air[r0:r1, c0:c1][ring].mean()) if ring.any() else 0.0


@dataclasses.dataclass
class Probe:
    """A candidate seeded into the segmentation: where it lies, what it segments as on the centre plane
    (`mask`, a bool crop whose top-left pixel is `offset`; None when it is no nodule of at least the minimum
    diameter) and its features for a learned ranking (`FEATURES`, in that order)."""

    cand: Candidate
    rank: int
    mask: np.ndarray | None
    offset: tuple[int, int]
    features: np.ndarray

    def inside(self, mask: np.ndarray) -> bool:
        """Does the candidate's point lie inside `mask` (a full-slice bool mask; a training label only)?"""
        return bool(mask[self.cand.r, self.cand.c])


#: per-candidate features of a learned ranking: the blob (strength, scale, isolation, its order), the
#: segmented nodule's size, shape and density on the centre plane, its persistence across the 2.5D context
#: (a nodule stays where it is from plane to plane, a vessel moves), and its depth inside the lung. Nothing
#: about where on the slice it lies (composites are placed uniformly in the lung, real nodules are not).
FEATURES = ("rank", "log_score", "log_blob", "radius_mm", "isolation", "segments", "diameter_mm",
            "diameter_over_blob", "compactness", "elongation", "solidity", "hu_mean", "hu_max", "hu_std",
            "threshold_hu", "core_radius_mm", "volume_mm3", "persist_iou", "persist_area", "plane_blob_ratio",
            "lung_depth_mm")


def survey(s: Slice, *, n_candidates: int = 15, n_ground_glass: int = 10, min_diameter_mm: float = 3.0,
           **candidate_params) -> list[Probe]:
    """Every one of the `n_candidates` best solid candidates of full slice `s` and its `n_ground_glass` best
    other ground-glass ones (`candidates`), segmented and described (for a learned ranking: `NoduleFinder`
    with a ranker, and its training). `DataError` naming the sample when it has no lungs or no candidate;
    candidates that segment as no nodule are kept with `mask=None`."""
    stack, spacing3, lung, found = _search(s, max_candidates=max(n_candidates, 1), n_ground_glass=n_ground_glass,
                                           **candidate_params)
    depth = ndi.distance_transform_edt(lung, sampling=s.spacing)
    return [_probe(stack, spacing3, depth, cand, rank, min_diameter_mm) for rank, cand in enumerate(found)]


def find_nodule(s: Slice, *, max_tries: int = 5, min_diameter_mm: float = 3.0, context: int = 1,
                ranker: CandidateRanker | None = None, n_candidates: int = 15, n_ground_glass: int = 10,
                top: int = 1, **candidate_params) -> Slice:
    """The nodule-view sample of full slice `s` (see the module docstring); `DataError` naming the sample
    when it has no lungs or no candidate that segments as a nodule.

    Without `ranker`: the first of the `max_tries` best candidates (blob order) that segments as a nodule.
    With one (a fitted `preprocess.rank.CandidateRanker`): of the `n_candidates` best solid and
    `n_ground_glass` ground-glass candidates (`survey`), the one that segments as a nodule and that the
    ranker scores highest, carrying its `top` - 1 runners-up (`ranked_sample`)."""
    if ranker is not None:
        probes = survey(s, n_candidates=n_candidates, n_ground_glass=n_ground_glass,
                        min_diameter_mm=min_diameter_mm, **candidate_params)
        return ranked_sample(s, probes, ranker, min_diameter_mm, context, top)
    stack, spacing3, _, found = _search(s, n_ground_glass=n_ground_glass, **candidate_params)
    for rank, cand in enumerate(found[:max_tries]):
        mask, offset, _ = _segment(stack, spacing3, cand, min_diameter_mm)
        if mask is not None:
            return sample_at(s, Probe(cand, rank, mask, offset, np.zeros(0)), context)
    raise DataError(f"sample {s.meta.get('sample_id', '?')!r}: none of the {min(len(found), max_tries)} best candidates in the lungs "
                    f"segments as a nodule of at least {min_diameter_mm:g} mm; no nodule found on this slice")


def ranked_sample(s: Slice, probes: Sequence[Probe], ranker: CandidateRanker, min_diameter_mm: float = 3.0,
                  context: int = 1, top: int = 1) -> Slice:
    """The sample cut around the probe `ranker` scores highest among the `probes` (`survey`) that segment as a
    nodule; `DataError` naming the sample when none does. Shared by `find_nodule` and the CV, which surveys
    each slice once and ranks it with each fold's own ranker.

    With `top` > 1 the decision is soft: the sample also carries the samples of the next `top` - 1 probes
    (`RUNNERS_UP_KEY`) and each its share of the decision (`WEIGHT_KEY`: the ranker's scores to the power
    `SOFT_POWER`, normalised to sum to 1); `judged` turns them into what the nodule model judges and how its
    outputs are combined."""
    ok = [p for p in probes if p.mask is not None]
    if not ok:
        raise DataError(f"sample {s.meta.get('sample_id', '?')!r}: none of the {len(probes)} best candidates in "
                        f"the lungs segments as a nodule of at least {min_diameter_mm:g} mm; no nodule found on "
                        "this slice")
    if top == 1:
        return sample_at(s, ranker.pick(ok), context)
    scores = ranker.scores(ok)
    order = np.argsort(-scores, kind="stable")[:top]  # the first of equals first, as `pick`
    power = scores[order] ** SOFT_POWER
    weights = power / power.sum() if power.sum() > 0 else np.full(len(order), 1 / len(order))
    samples = [sample_at(s, ok[j], context) for j in order]
    samples = [x.replace(meta={**x.meta, WEIGHT_KEY: float(w)}) for x, w in zip(samples, weights)]
    return samples[0].replace(meta={**samples[0].meta, RUNNERS_UP_KEY: samples[1:]})


def judged(found: Sequence[Slice]) -> tuple[list[Slice], np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """What a nodule model judges for `found` samples, and how: every found sample followed by its runners-up
    (a soft find, `ranked_sample(top > 1)`), the position in `found` each belongs to, and the function that
    turns their class probabilities into one row per found sample (the weighted mean of its candidates';
    hard finds' rows as they are)."""
    flat: list[Slice] = []
    owner: list[int] = []
    for row, s in enumerate(found):
        group = [s, *s.meta.get(RUNNERS_UP_KEY, [])]
        flat += group
        owner += [row] * len(group)
    weight = np.array([s.meta.get(WEIGHT_KEY, 1.0) for s in flat])

    def decide(proba: np.ndarray) -> np.ndarray:
        if len(flat) == len(found):
            return proba
        out = np.zeros((len(found), proba.shape[1]), proba.dtype)
        np.add.at(out, np.asarray(owner), proba * weight[:, None])
        return out

    return flat, np.asarray(owner, dtype=int), decide


def sample_at(s: Slice, probe: Probe, context: int = 1) -> Slice:
    """The nodule-view sample of full slice `s` cut around `probe`'s segmented nodule, its meta carrying the
    found geometry and where it was found (`found_r`, ...)."""
    stack = s.array if s.array.ndim == 3 else s.array[None]
    centre = stack.shape[0] // 2
    mask = np.zeros(stack.shape, bool)
    (r0, c0), (h, w) = probe.offset, probe.mask.shape
    mask[centre, r0:r0 + h, c0:c0 + w] = probe.mask
    out = nodule_sample(stack, _spacing3(s), mask, view="nodule", context=context)
    cand = probe.cand
    meta = without_truth(s.meta)
    meta.update(out.meta)
    meta.update({"view": "nodule", "found_r": cand.r, "found_c": cand.c, "found_score": round(cand.score, 4),
                 "found_rank": probe.rank, "found_crop_r0": out.meta["crop_r0"],
                 "found_crop_c0": out.meta["crop_c0"], "full_rows": int(stack.shape[1]),
                 "full_cols": int(stack.shape[2])})
    array = out.array if s.array.ndim == 3 else out.array[centre]
    return out.replace(array=array, meta=meta)


def _search(s: Slice, **candidate_params) -> tuple[np.ndarray, tuple[float, float, float], np.ndarray,
                                                    list[Candidate]]:
    """(2.5D stack, (z, row, col) spacing, lung mask, candidates best first) of full slice `s`."""
    sid = s.meta.get("sample_id", "?")
    stack = s.array if s.array.ndim == 3 else s.array[None]
    lung = lung_mask_array(stack[stack.shape[0] // 2], s.spacing).astype(bool)
    if not lung.any():
        raise DataError(f"sample {sid!r}: no lungs found on this slice (is it a chest CT slice in HU?); "
                        "no nodule can be found on it")
    found = candidates(stack, s.spacing, lung, **candidate_params)
    if not found:
        raise DataError(f"sample {sid!r}: no nodule candidate in the lungs (nothing blob-like denser than "
                        "lung); this slice shows no nodule to classify")
    return stack, _spacing3(s), lung, found


def _segment(stack: np.ndarray, spacing3: tuple[float, float, float], cand: Candidate, min_diameter_mm: float):
    """The centre-plane mask (bool crop, its top-left pixel) of what `cand` segments as, and the segmentation
    itself (`NoduleMask`; None when it refused the point). The mask is None when it is no nodule of at least
    `min_diameter_mm` across on the centre plane or the segmentation ran off to a neighbouring structure."""
    centre = stack.shape[0] // 2
    try:
        seg = segment_nodule(stack, spacing3, (centre, cand.r, cand.c), min_diameter_mm=min_diameter_mm)
    except DataError:
        return None, (0, 0), None
    plane = seg.mask[centre]
    rows, cols = np.nonzero(plane)
    if rows.size == 0:
        return None, (0, 0), seg
    near = np.hypot((rows - cand.r) * spacing3[1], (cols - cand.c) * spacing3[2]).min() <= cand.radius_mm
    area_mm2 = float(rows.size) * spacing3[1] * spacing3[2]
    if not near or 2.0 * math.sqrt(area_mm2 / math.pi) < min_diameter_mm:
        return None, (0, 0), seg  # ran off to a neighbouring structure, or too small on this plane
    r0, c0 = int(rows.min()), int(cols.min())
    return plane[r0:rows.max() + 1, c0:cols.max() + 1].copy(), (r0, c0), seg


def _probe(stack: np.ndarray, spacing3: tuple[float, float, float], lung_depth: np.ndarray, cand: Candidate,
           rank: int, min_diameter_mm: float) -> Probe:
    """`cand` segmented and described by `FEATURES`."""
    from skimage.measure import regionprops

    mask, offset, seg = _segment(stack, spacing3, cand, min_diameter_mm)
    centre = stack.shape[0] // 2
    px = spacing3[1] * spacing3[2]
    f = dict.fromkeys(FEATURES, 0.0)
    f.update(rank=rank, log_score=math.log(max(cand.score, 1e-6)), log_blob=math.log(max(cand.blob, 1e-6)),
             radius_mm=cand.radius_mm, isolation=cand.isolation, lung_depth_mm=float(lung_depth[cand.r, cand.c]),
             plane_blob_ratio=_plane_blob_ratio(stack, cand, spacing3[1:]))
    if mask is not None:
        (r0, c0), (h, w) = offset, mask.shape
        hu = stack[centre, r0:r0 + h, c0:c0 + w][mask].astype(np.float32)
        props = regionprops(mask.astype(np.uint8))[0]
        area = float(mask.sum()) * px
        diameter = 2.0 * math.sqrt(area / math.pi)
        perimeter = max(props.perimeter * math.sqrt(px), 1e-6)
        seg3 = seg.mask
        centre_plane = seg3[centre]
        others = [k for k in range(seg3.shape[0]) if k != centre]
        ious = [float((seg3[k] & centre_plane).sum()) / max(float((seg3[k] | centre_plane).sum()), 1.0) for k in others]
        areas = [float(seg3[k].sum()) / max(float(centre_plane.sum()), 1.0) for k in others]
        f.update(segments=1.0, diameter_mm=diameter, diameter_over_blob=diameter / (2.0 * cand.radius_mm),
                 compactness=min(4.0 * math.pi * area / perimeter ** 2, 2.0),
                 elongation=props.axis_minor_length / max(props.axis_major_length, 1e-6), solidity=props.solidity,
                 hu_mean=float(hu.mean()), hu_max=float(hu.max()), hu_std=float(hu.std()),
                 threshold_hu=seg.threshold, core_radius_mm=seg.core_radius_mm,
                 volume_mm3=float(seg3.sum()) * px * spacing3[0],
                 persist_iou=float(np.mean(ious)) if ious else 1.0,
                 persist_area=float(np.mean(areas)) if areas else 1.0)
    return Probe(cand, rank, mask, offset, np.array([f[k] for k in FEATURES], np.float32))


def _plane_blob_ratio(stack: np.ndarray, cand: Candidate, spacing: tuple[float, float]) -> float:
    """The blob strength at the candidate on its weakest neighbouring plane over that on the centre plane:
    near 1 for a nodule (it is there on every plane), low for a vessel crossing the slice obliquely."""
    if stack.shape[0] == 1:
        return 1.0
    sigma = cand.radius_mm / math.sqrt(2.0) / np.asarray(spacing, float)
    h = np.ceil(4 * sigma).astype(int)
    r0, c0 = max(cand.r - h[0], 0), max(cand.c - h[1], 0)
    patch = np.clip((stack[:, r0:cand.r + h[0] + 1, c0:cand.c + h[1] + 1].astype(np.float32) + 1000) / 1000, 0, 1)
    at = (cand.r - r0, cand.c - c0)
    values = []
    for plane in patch:
        hrr = ndi.gaussian_filter(plane, sigma, order=(2, 0))[at]
        hcc = ndi.gaussian_filter(plane, sigma, order=(0, 2))[at]
        hrc = ndi.gaussian_filter(plane, sigma, order=(1, 1))[at]
        values.append(max(0.0, -((hrr + hcc) / 2 + math.sqrt(((hrr - hcc) / 2) ** 2 + hrc ** 2))))
    centre = values[len(values) // 2]
    others = values[:len(values) // 2] + values[len(values) // 2 + 1:]
    return float(min(others) / centre) if centre > 0 else 0.0


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
    out = nodule_sample(stack, _spacing3(s), mask, view="nodule", context=context)
    meta = without_truth(s.meta)
    meta.update(out.meta, view="nodule")
    return out.replace(array=out.array if s.array.ndim == 3 else out.array[centre], meta=meta)


def without_truth(meta: dict) -> dict:
    """`meta` without the columns that give away where the nodule is or how large it is."""
    return {k: v for k, v in meta.items() if k not in TRUTH_KEYS and not k.startswith(TRUTH_PREFIXES)}


def _spacing3(s: Slice) -> tuple[float, float, float]:
    """(z, row, col) mm of full slice `s`'s stack; z the LIDC median when the manifest has no thickness."""
    return slice_thickness(s, DEFAULT_THICKNESS_MM), float(s.spacing[0]), float(s.spacing[1])


@dataclasses.dataclass
class NoduleFinder:
    """`find_nodule` with fixed parameters over many slices: what a find-then-classify model applies before
    its nodule model. Without a ranker it is stateless; with one (`preprocess.rank.CandidateRanker`, fitted
    on training slices) the ranker is its only fitted part, and travels with it in the checkpoint; `top` > 1
    (with a ranker) makes its finds soft (`ranked_sample`)."""

    max_tries: int = 5
    min_diameter_mm: float = 3.0
    n_candidates: int = 15
    ranker: CandidateRanker | None = None
    top: int = 1
    n_ground_glass: int = 10

    def get_params(self) -> dict:
        return {"max_tries": self.max_tries, "min_diameter_mm": self.min_diameter_mm,
                "n_candidates": self.n_candidates, "ranker": self.ranker, "top": self.top,
                "n_ground_glass": self.n_ground_glass}

    @classmethod
    def from_params(cls, params: dict) -> NoduleFinder:
        """The finder of a checkpoint's `get_params`. Parameters written before the ground-glass source existed
        have no `n_ground_glass`: their ranker learned from solid candidates only and keeps seeing only those."""
        return cls(**{"n_ground_glass": 0, **params})

    def find(self, s: Slice) -> Slice:
        return find_nodule(s, max_tries=self.max_tries, min_diameter_mm=self.min_diameter_mm, ranker=self.ranker,
                           n_candidates=self.n_candidates, n_ground_glass=self.n_ground_glass, top=self.top)

    def __call__(self, slices: Sequence[Slice]) -> list[Slice]:
        """The found nodule samples, in order; `DataError` listing every sample where none was found."""
        out, missing = [], []
        for s in slices:
            try:
                out.append(self.find(s))
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
                out.append(self.find(s))
            except DataError as exc:
                out.append(str(exc))
        return out
