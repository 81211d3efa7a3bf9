"""`ctnodule import composite NODULES FULL OUT`: real nodules placed into real full lung slices, at scale.

Only 20 real full slices go through an annotated nodule here, too few to measure a full-view classifier.
Lesion insertion (how virtual imaging trials build measurable test sets) gives one full slice per real
nodule: every nodule sample of a VOI slice dataset (NODULES) is placed into a real full slice (FULL: a
LIDC-IDRI archive, every slice of it, or a slice dataset's `full` samples):

- scale: the nodule crop, its mask and its 2.5D context are resampled to the background's pixel spacing,
  so a 10 mm nodule stays 10 mm;
- where: a background and a position drawn from an RNG seeded by (`seed`, sample_id), so the same seed
  gives the same composite whatever the order; the whole pasted footprint (mask + feathered margin) lies
  inside the aerated lung (`aerated_lung`: the lung mask of `lung_mask_array` less any soft tissue in it
  wider than `dense_mm`) at least `clearance_mm` from its border (hence from the mediastinum, the chest
  wall and the image border) and `avoid_mm` from every reader's outline of an annotated nodule on the
  slice or its context neighbours;
- blend, in HU: inside the mask the nodule's own pixels; across a `margin_mm` margin their weight falls
  linearly to 0, after the nodule crop's parenchyma has been shifted to the local parenchyma level of the
  background (medians of HU < `parenchyma_hu`; soft tissue keeps its HU: `parenchyma_share`). Dense
  tissue that reaches the crop border (chest wall or mediastinum of a juxta-pleural nodule) is not pasted:
  the nodule loses its pleural contact (`juxta_pleural` = 1 counts those), rather than carry a piece of
  another patient's wall into open lung;
- 2.5D: every context plane gets its own neighbour plane of the nodule with the same weights;
- manifest: `view=full`, `source=composite`, `patient_id` = the NODULE's patient (splits group by it: the
  label and the nodule belong to that patient), `bg_patient_id` etc. the background's; the new mask, bbox
  and centre; the nodule's original ids, spacing and slice under `nodule_*`.

Per sample the seam is measured (`seam_grad_*`: mean |grad HU| in HU/mm over the feathered band, in the
composite, in the nodule's own crop = a real nodule's surroundings, and in the bare background), and the
nodule edge (`edge_grad*`). `composite_report.write_report` turns them into the realism page.
Samples that cannot be placed (no spacing, no lung region wide enough) are skipped and reported.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import time
import zlib
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from ctnodule.data.backgrounds import Background, load_backgrounds
from ctnodule.data.dataset import SliceDataset
from ctnodule.data.importers.base import ImportReport, Skips, finish
from ctnodule.data.importers.voi import context_indices
from ctnodule.data.manifest import COMPOSITE_SOURCE
from ctnodule.data.measure import mask_geometry
from ctnodule.data.writer import open_dataset
from ctnodule.errors import ConfigError, DataError
from ctnodule.preprocess.lungmask import lung_mask_array

#: the nodule sample's columns that describe its own slice; kept under `nodule_<name>`
NODULE_OWN = ("sample_id", "series_uid", "slice_z", "slice_index", "slice_thickness", "spacing_row", "spacing_col",
              "mask_area_mm2", "mask_diameter_mm", "context_replicated")
#: columns of the nodule sample that a composite replaces (its own geometry, files and view)
REPLACED = ("path", "context_path", "mask_path", "view", "source", "bbox_r0", "bbox_c0", "bbox_r1", "bbox_c1",
            "centre_r", "centre_c", "orig_rows", "orig_cols", "crop_r0", "crop_c0", "n_slices", "synthetic")


@dataclasses.dataclass(frozen=True)
class CompositeConfig:
    """How nodules are placed and blended (defaults: what the realism checks were measured with)."""

    seed: int = 0
    margin_mm: float = 3.0  # feathered margin outside the nodule mask: weight 1 -> 0 across it
    clearance_mm: float = 3.0  # footprint to the lung mask's border
    avoid_mm: float = 10.0  # footprint to an annotated nodule
    min_lung_mm2: float = 2000.0  # a background with less lung (both lungs together) is not used
    parenchyma_hu: float = -500.0  # below: lung parenchyma, for the level match
    wall_hu: float = -400.0  # above, connected to the crop border: chest wall / mediastinum, not pasted
    wall_share: float = 0.1  # ... when it covers at least this share of the nodule crop (else: a vessel)
    dense_hu: float = -300.0  # above, in the lung mask: soft tissue (fat is ~ -100 HU) ...
    dense_mm: float = 8.0  # ... taken out of the placement region when wider than this (vessels stay)
    min_region_mm2: float = 600.0  # smaller aerated islands (trachea, bronchi: < ~500 mm2) are not lung

    def check(self) -> None:
        if not (self.margin_mm > 0 and self.clearance_mm >= 0 and self.avoid_mm >= 0 and self.min_lung_mm2 >= 0
                and self.dense_mm > 0 and self.min_region_mm2 >= 0):
            raise ConfigError(f"composite: margin_mm and dense_mm must be > 0 and clearance/avoid/min_lung/"
                              f"min_region >= 0, got {self}")


@dataclasses.dataclass
class Site:
    """A background ready for placement: its aerated lung (`aerated_lung`) and, per pixel, the room (mm) a
    footprint centred there may have (distance to that region's border minus clearance, to annotated
    nodules minus avoid_mm)."""

    bg: Background
    lung: np.ndarray
    room: np.ndarray

    @functools.cached_property
    def widest(self) -> float:
        """The largest room anywhere on the slice (asked of every site for every nodule: computed once)."""
        return float(self.room.max())


def aerated_lung(hu: np.ndarray, lung: np.ndarray, spacing: tuple[float, float], cfg: CompositeConfig) -> np.ndarray:
    """The part of a lung mask a nodule may be placed in: aerated lung only.

    The lung mask closes each lung with a 20 mm disk and fills its holes; where the two lungs touch (the
    anterior junction: LIDC-IDRI-0002 at z -129.5..-107, 1 component instead of 2) it is one lung, and the
    mediastinum enclosed between them is filled in (14-16 % of the mask > -300 HU there, 1.5 % on the slices
    above). So soft tissue wider than `dense_mm` is taken out (an opening keeps only what a `dense_mm`
    disk fits in: vessels and small nodules stay, as before), and aerated islands smaller than
    `min_region_mm2` (the trachea and bronchi left inside the mediastinum) are dropped."""
    dense = (lung & (hu > cfg.dense_hu)).astype(np.uint8)
    r = max(1, round(cfg.dense_mm / 2 / math.sqrt(spacing[0] * spacing[1])))
    wide = cv2.morphologyEx(dense, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1,) * 2))
    aerated = lung & ~wide.astype(bool)
    labels, n = ndi.label(aerated)
    sizes = np.bincount(labels.ravel(), minlength=n + 1) * spacing[0] * spacing[1]
    return np.isin(labels, [i for i in range(1, n + 1) if sizes[i] >= cfg.min_region_mm2])


def prepare_sites(backgrounds: list[Background], cfg: CompositeConfig, skips: Skips) -> list[Site]:
    """Aerated lung and room maps of every background; slices with too little lung are skipped (reported)."""
    sites = []
    for bg in backgrounds:
        lung = lung_mask_array(bg.hu, bg.spacing).astype(bool)
        area = float(lung.sum()) * bg.spacing[0] * bg.spacing[1]
        if area < cfg.min_lung_mm2:
            skips.add(f"background {bg.name}", f"lung area {area:.0f} mm2 < {cfg.min_lung_mm2:g} mm2 (a slice "
                      "without lungs, or only their tips): not used as a background")
            continue
        lung = aerated_lung(bg.hu, lung, bg.spacing, cfg)
        padded = np.pad(lung, 1)  # the image border counts as outside the lung
        room = ndi.distance_transform_edt(padded, sampling=bg.spacing)[1:-1, 1:-1] - cfg.clearance_mm
        if bg.avoid.any():
            room = np.minimum(room, ndi.distance_transform_edt(~bg.avoid, sampling=bg.spacing) - cfg.avoid_mm)
        sites.append(Site(bg, lung, room.astype(np.float32)))
    return sites


@dataclasses.dataclass
class Graft:
    """A nodule resampled to a background's spacing: planes (2k+1, h, w) float HU, mask, blend weight."""

    planes: np.ndarray
    mask: np.ndarray
    weight: np.ndarray
    wall: np.ndarray  # dense tissue reaching the crop border, left out of the paste
    juxta_pleural: bool
    level: float | None  # median parenchyma HU of the crop, None when it shows (almost) none


def footprint_radius_mm(mask: np.ndarray, spacing: tuple[float, float], margin_mm: float) -> float:
    """Largest distance (mm) from the mask's centroid to any pixel of the pasted footprint, + 1 px slack."""
    rows, cols = np.nonzero(mask)
    cr, cc = rows.mean(), cols.mean()
    reach = np.sqrt(((rows - cr) * spacing[0]) ** 2 + ((cols - cc) * spacing[1]) ** 2).max()
    return float(reach + margin_mm + max(spacing))


def make_graft(planes: np.ndarray, mask: np.ndarray, spacing: tuple[float, float], target: tuple[float, float],
               cfg: CompositeConfig) -> Graft:
    """Resample the nodule crop to `target` spacing and compute its blend weights."""
    fr, fc = spacing[0] / target[0], spacing[1] / target[1]
    h, w = mask.shape
    size = (max(1, round(w * fc)), max(1, round(h * fr)))  # cv2: (width, height)
    interp = cv2.INTER_AREA if fr * fc < 1 else cv2.INTER_LINEAR
    planes = np.stack([cv2.resize(p.astype(np.float32), size, interpolation=interp) for p in planes])
    mask = cv2.resize(mask.astype(np.float32), size, interpolation=cv2.INTER_LINEAR) >= 0.5
    if not mask.any():
        raise DataError("the nodule mask vanishes when resampled to the background's spacing")
    centre = planes[len(planes) // 2]
    outside = ndi.distance_transform_edt(~mask, sampling=target)  # mm from the mask
    rr, cc = np.indices(mask.shape)
    edge = np.minimum.reduce([rr, cc, mask.shape[0] - 1 - rr, mask.shape[1] - 1 - cc]) * min(target)
    weight = np.clip(np.minimum(1.0 - outside / cfg.margin_mm, edge / cfg.margin_mm), 0.0, 1.0)
    # the first pixel ring outside the mask is the nodule's own partial-volume edge, never wall
    dense = (centre > cfg.wall_hu) & (outside > 1.01 * max(target))
    labels, n = ndi.label(dense)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    # a vessel crossing the crop is pasted (it fades across the margin); chest wall or mediastinum covers a
    # large share of the crop (median 34 % on the VOIs where present)
    wall = np.isin(labels, [b for b in border if b > 0 and sizes[b] >= cfg.wall_share * mask.size])
    juxta = bool(wall.any() and outside[wall].min() <= 2.5 * max(target))
    if wall.any():
        keep = 1.0 - np.clip(cv2.GaussianBlur(wall.astype(np.float32), (0, 0), 1.0) * 2.0, 0.0, 1.0)
        weight = np.where(mask, 1.0, weight * keep)
    weight[mask] = 1.0
    par = (~mask) & (~wall) & (outside > 1.0) & (centre < cfg.parenchyma_hu)
    level = float(np.median(centre[par])) if par.sum() >= 10 else None
    return Graft(planes, mask, weight.astype(np.float32), wall, juxta, level)


def sample_rng(seed: int, sample_id: str) -> np.random.Generator:
    """One generator per sample from (seed, sample id): order- and subset-independent draws."""
    return np.random.default_rng([int(seed), zlib.crc32(str(sample_id).encode())])


def choose_site(sites: list[Site], radius_mm: float, rng: np.random.Generator) -> tuple[Site, int, int] | None:
    """A background patient, then one of its slices with room for a footprint of `radius_mm`, then a centre
    pixel there, each uniformly (patient first: one long series must not supply most anatomies)."""
    fits = [s for s in sites if s.widest >= radius_mm]
    if not fits:
        return None
    patients = sorted({s.bg.patient_id for s in fits})
    patient = patients[int(rng.integers(len(patients)))]
    fits = [s for s in fits if s.bg.patient_id == patient]
    site = fits[int(rng.integers(len(fits)))]
    rows, cols = np.nonzero(site.room >= radius_mm)
    k = int(rng.integers(len(rows)))
    return site, int(rows[k]), int(cols[k])


def _grad(img: np.ndarray, spacing: tuple[float, float]) -> np.ndarray:
    """|grad| in HU/mm (Sobel, normalised)."""
    img = img.astype(np.float32)
    gr = cv2.Sobel(img, cv2.CV_32F, 0, 1, ksize=3) / (8.0 * spacing[0])
    gc = cv2.Sobel(img, cv2.CV_32F, 1, 0, ksize=3) / (8.0 * spacing[1])
    return np.hypot(gr, gc)


def _mean(values: np.ndarray, where: np.ndarray) -> float:
    return round(float(values[where].mean()), 2) if where.any() else float("nan")


def parenchyma_share(hu: np.ndarray, lung_hu: float = -500.0, tissue_hu: float = -100.0) -> np.ndarray:
    """How much of the parenchyma level shift a pixel takes: 1 at or below `lung_hu`, 0 at or above
    `tissue_hu` (solid nodule, vessels: soft tissue keeps its HU whatever the patient's lung density), linear
    between (ground glass, partial volume)."""
    return np.clip((tissue_hu - hu) / (tissue_hu - lung_hu), 0.0, 1.0)


def place(site: Site, graft: Graft, r: int, c: int,
          parenchyma_hu: float = -500.0) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Paste `graft` with its mask centroid at (r, c) of `site`: (context stack int16, full mask, numbers)."""
    bg = site.bg
    rows, cols = np.nonzero(graft.mask)
    r0 = r - round(rows.mean())
    c0 = c - round(cols.mean())
    h, w = graft.mask.shape
    H, W = bg.hu.shape
    # the footprint (weight > 0) must lie inside the slice, the lung, and off annotated nodules
    foot = graft.weight > 0
    fr, fc = np.nonzero(foot)
    if r0 + fr.min() < 0 or c0 + fc.min() < 0 or r0 + fr.max() >= H or c0 + fc.max() >= W:
        raise DataError("placement left the image (internal: room map and footprint disagree)")
    # a window of the background holding the graft (the graft crop may extend past the footprint)
    wr0, wc0 = max(r0, 0), max(c0, 0)
    wr1, wc1 = min(r0 + h, H), min(c0 + w, W)
    g = (slice(wr0 - r0, wr1 - r0), slice(wc0 - c0, wc1 - c0))
    win = (slice(wr0, wr1), slice(wc0, wc1))
    wgt = graft.weight[g]
    if not site.lung[win][wgt > 0].all() or bg.avoid[win][wgt > 0].any():
        raise DataError("placement left the lung or touched an annotated nodule (internal: room map and footprint "
                        "disagree)")
    near = ndi.binary_dilation(wgt > 0, iterations=max(1, round(3.0 / min(bg.spacing))))
    bg_par = bg.hu[win][near & (bg.hu[win] < parenchyma_hu) & site.lung[win]]
    bg_level = float(np.median(bg_par)) if bg_par.size >= 10 else None
    shift = 0.0 if graft.level is None or bg_level is None else bg_level - graft.level
    out = bg.context.copy()
    for j in range(len(out)):
        plane = out[j][win].astype(np.float32)
        mixed = wgt * (graft.planes[j][g] + shift * parenchyma_share(graft.planes[j][g], parenchyma_hu)) + (1.0 - wgt) * plane
        out[j][win] = np.clip(np.rint(mixed), -1024, 3071).astype(np.int16)
    mask = np.zeros((H, W), np.uint8)
    mask[win] = graft.mask[g]
    # seam and edge numbers on the centre plane, in a window 2 px wider than the graft
    k = len(out) // 2
    band = (wgt > 0) & (wgt < 1) & ~graft.mask[g] & ~graft.wall[g]
    edge = graft.mask[g] & ~ndi.binary_erosion(graft.mask[g])
    comp_grad = _grad(out[k][win], bg.spacing)
    numbers = {
        "level_shift_hu": round(shift, 1),
        "seam_grad": _mean(comp_grad, band),
        "seam_grad_nodule": _mean(_grad(graft.planes[k][g], bg.spacing), band),
        "seam_grad_bg": _mean(_grad(bg.hu[win], bg.spacing), band),
        "edge_grad": _mean(comp_grad, edge),
        "edge_grad_nodule": _mean(_grad(graft.planes[k][g], bg.spacing), edge),
    }
    return out, mask, numbers


def import_composite(out: str | Path, *, nodules: str | Path, full: str | Path, seed: int = 0, context: int = 1,
                     use_db: bool = True, limit: int | None = None, force: bool = False,
                     progress: bool = True, config: CompositeConfig | None = None) -> ImportReport:
    """Place every nodule sample of `nodules` into a full slice from `full` (see the module docstring);
    writes the dataset, `import_report.json` (with the realism numbers) and `report.html` into `out`."""
    from tqdm import tqdm

    from ctnodule.preprocess.composite_report import summarise, write_report

    cfg = dataclasses.replace(config or CompositeConfig(), seed=seed)
    cfg.check()
    if context < 0:
        raise ConfigError(f"context must be >= 0 (slices each side), got {context}")
    started, cpu0 = time.perf_counter(), _cpu()
    skips = Skips()
    ds = SliceDataset(nodules).view("nodule")
    if len(ds) == 0:
        raise DataError("no `nodule` samples to place (NODULES must be a nodule-view slice dataset, e.g. from "
                        "`ctnodule import voi`)", nodules)
    if limit is not None:
        ds = ds.subset(np.arange(min(limit, len(ds))))
    t_bg = time.perf_counter()
    sites = prepare_sites(load_backgrounds(full, context, use_db, skips), cfg, skips)
    if not sites:
        raise DataError("no background slice shows enough lung to place a nodule in; " +
                        "; ".join(s["reason"] for s in skips.items[:3]), full)
    bg_seconds = time.perf_counter() - t_bg
    checks = []
    with open_dataset(out, force=force) as writer:
        for i in tqdm(range(len(ds)), desc="composite", unit="nodule", disable=not progress):
            row = ds._rows[i]
            try:
                numbers = _add_one(writer, ds, i, sites, cfg, context)
            except DataError as exc:
                skips.add(str(row["sample_id"]), str(exc))
                continue
            checks.append(numbers)
        frame = writer.frame()
        details = {
            "backgrounds": {"slices_used": len(sites), "patients": sorted({s.bg.patient_id for s in sites}),
                            "per_patient": pd.Series([s.bg.patient_id for s in sites]).value_counts().to_dict(),
                            "seconds": round(bg_seconds, 1)},
            "config": dataclasses.asdict(cfg),
            "cpu_seconds": None,
        }
        if not frame.empty:
            details.update(summarise(frame, checks))
            details["cpu_seconds"] = round(_cpu() - cpu0, 1)
            write_report(writer.folder, frame, checks, sites, ds, details)
        return finish(writer, "composite", nodules, out, skips, started, details=details, full=str(full),
                      seed=seed, context=context, use_db=use_db, limit=limit)


def _add_one(writer, ds: SliceDataset, i: int, sites: list[Site], cfg: CompositeConfig, k: int) -> dict[str, Any]:
    s = ds[i]
    row = ds._rows[i]
    if s.mask is None or not s.mask.any():
        raise DataError("no nodule mask: the nodule cannot be cut out of its crop")
    if not all(np.isfinite(s.spacing)) or min(s.spacing) <= 0:
        raise DataError("no pixel spacing (NRRD header and manifest): the nodule cannot be placed at scale")
    stack = ds.context(i)
    stack = s.array[None] if stack is None else stack
    planes = stack[context_indices(stack.shape[0] // 2, k, stack.shape[0])]
    mask = s.mask.astype(bool)
    radius = footprint_radius_mm(mask, s.spacing, cfg.margin_mm)
    rng = sample_rng(cfg.seed, row["sample_id"])
    chosen = choose_site(sites, radius, rng)
    if chosen is None:
        widest = max(site.widest for site in sites)
        raise DataError(f"nodule too large for every lung region: its footprint needs {radius:.1f} mm of room "
                        f"around its centre, the widest background offers {widest:.1f} mm")
    site, r, c = chosen
    graft = make_graft(planes, mask, s.spacing, site.bg.spacing, cfg)
    stack_out, full_mask, numbers = place(site, graft, r, c, cfg.parenchyma_hu)
    bg = site.bg
    geom = mask_geometry(full_mask, bg.spacing)
    carried = {key: value for key, value in row.items() if key not in REPLACED and key not in NODULE_OWN
               and key not in ("patient_id", "nodule_id", "malignancy", "label_binary")}
    own = {f"nodule_{key}": row.get(key) for key in NODULE_OWN}
    provenance = {
        "bg_patient_id": bg.patient_id, "bg_name": bg.name, "bg_series_uid": bg.series_uid,
        "bg_slice_z": bg.slice_z, "bg_slice_index": bg.slice_index,
        "series_uid": bg.series_uid, "slice_z": bg.slice_z, "slice_thickness": bg.thickness,
        "context_replicated": bg.replicated, "synthetic": int(_flag(row.get("synthetic")) or bg.synthetic),
        "scale": round(math.sqrt(s.spacing[0] * s.spacing[1] / (bg.spacing[0] * bg.spacing[1])), 4),
        "juxta_pleural": int(graft.juxta_pleural),
    }
    name = f"{row['patient_id']}_N{row['nodule_id']}_composite"
    writer.add(stack_out[k], bg.spacing, sample_id=name, patient_id=str(row["patient_id"]),
               nodule_id=row["nodule_id"], view="full", malignancy=int(row["malignancy"]), source=COMPOSITE_SOURCE,
               context=stack_out, mask=full_mask, orig_rows=bg.hu.shape[0], orig_cols=bg.hu.shape[1],
               crop_r0=0, crop_c0=0, nodule_patient_id=str(row["patient_id"]), **own, **provenance, **geom,
               **numbers, **carried)
    hist = _histograms(graft, stack_out[k], full_mask, r, c)
    return {"sample_id": name, "juxta_pleural": int(graft.juxta_pleural), **numbers, **hist}


#: HU bins of the before/after histograms (nodule + margin)
HU_BINS = np.arange(-1050, 451, 25)


def _histograms(graft: Graft, plane: np.ndarray, mask: np.ndarray, r: int, c: int) -> dict[str, np.ndarray]:
    """HU counts of the footprint (mask + margin) in the nodule's own (resampled) crop and in the composite."""
    k = len(graft.planes) // 2
    foot = graft.weight > 0
    rows, cols = np.nonzero(graft.mask)
    r0, c0 = r - round(rows.mean()), c - round(cols.mean())
    fr, fc = np.nonzero(foot)
    before = graft.planes[k][foot]
    after = plane[fr + r0, fc + c0]
    return {"hist_before": np.histogram(before, HU_BINS)[0], "hist_after": np.histogram(after, HU_BINS)[0],
            "mask_hu_before": float(np.median(graft.planes[k][graft.mask])),
            "mask_hu_after": float(np.median(plane[mask.astype(bool)]))}


def _flag(value: Any) -> bool:
    try:
        return float(value) == 1
    except (TypeError, ValueError):
        return False


def _cpu() -> float:
    """CPU seconds of this process and its finished children."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system
