"""Heat maps for a run's predictor on raw slices, scored against the nodule, drawn, and mapped back onto
the input grid (`explain_slices`, for `ctnodule predict --explain`).

Everything is computed in the frame the network saw: the run's own preprocessing moves the nodule mask
(and bbox) along with the image, so the localisation score needs no inverse mapping. For display the raw
slice is passed through the pipeline's geometric steps only and shown in the lung window, so the
overlay sits on the real anatomy (not on the CLAHE'd, background-masked input) at the same pixels.
`explain_slices` maps each heat map back onto the input slice's own pixel grid.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ctnodule.data.slice import Slice
from ctnodule.errors import DataError
from ctnodule.explain.gradcam import CamExplainer
from ctnodule.explain.localization import (
    BBOX_KEYS,
    area_fraction,
    cam_mass_in_mask,
    grow_mask,
    pointing_game,
    region_mask,
)
from ctnodule.explain.overlay import draw_region, enlarge, overlay, sample_panels
from ctnodule.preprocess.base import LUNG_MASK

#: slices per forward/backward pass: bounded memory, and the batch a size-taking model is prepared for
CHUNK = 16
TILE_SIDE = 256
#: margin (mm) of the grown nodule region `cam_in_mask_3mm` scores against
GROW_MM = 3.0


@dataclasses.dataclass
class Explained:
    """One explained sample, everything in the network's pixel frame."""

    cam: np.ndarray                 # (H, W) float32 in [0, 1]
    image: np.ndarray               # the raw slice after the geometric steps only (HU)
    net_input: np.ndarray           # what the network saw (the centre plane), [0, 1]
    region: np.ndarray | None       # nodule mask or bbox, bool (H, W)
    region_source: str              # "mask", "bbox" or "none"
    probs: np.ndarray               # (K,)
    target: int                     # the class explained
    affine: tuple[float, float, float, float]  # network (row, col) = (r * a0 + a1, c * a2 + a3) of the input
    lung: np.ndarray | None = None  # the pipeline's lung mask (full slices), bool (H, W)
    spacing: tuple[float, float] | None = None  # mm per pixel of the network frame


def geometry_only(pipeline: Any, s: Slice) -> tuple[Slice, tuple[float, float, float, float]]:
    """`s` through the pipeline's geometric (`size`) steps only, and the affine map from `s`'s pixel edges
    to the result's, read from how those steps carry the manifest's bbox columns (their documented
    contract) on a probe box spanning the whole slice."""
    h, w = s.array.shape[-2:]
    meta = {k: v for k, v in s.meta.items() if k not in BBOX_KEYS and k not in ("centre_r", "centre_c")}
    out = s.replace(meta={**meta, "bbox_r0": 0.0, "bbox_c0": 0.0, "bbox_r1": float(h), "bbox_c1": float(w)})
    for step in getattr(pipeline, "steps", []):
        if getattr(step, "name", "") == "size":
            out = step(out)
    m = out.meta
    a = ((m["bbox_r1"] - m["bbox_r0"]) / h, m["bbox_r0"], (m["bbox_c1"] - m["bbox_c0"]) / w, m["bbox_c0"])
    return out.replace(meta=s.meta), tuple(float(v) for v in a)


def _centre(a: np.ndarray) -> np.ndarray:
    return a if a.ndim == 2 else a[a.shape[0] // 2]


def explain_batch(predictor: Any, slices: Sequence[Slice], cam: CamExplainer,
                  target: int | None = None) -> list[Explained]:
    """Explain up to a chunk of raw (HU) slices with an open `CamExplainer` over `predictor.model`. A
    find-then-classify run explains the nodule crop it found (its frame, its found mask)."""
    if hasattr(predictor, "found"):
        slices = predictor.found(slices)
    processed = [predictor.pipeline.transform(s) for s in slices]
    # the run's own prediction (its TTA, its SVM) decides the predicted class; the map explains it
    probs = np.asarray(predictor.predict_proba(list(slices)), dtype=np.float64)
    x = predictor.prepare(list(slices)).to(getattr(predictor, "device", "cpu"))
    maps, _, explained = cam(x, probs.argmax(1) if target is None else target)
    out = []
    for s, p, m, pr, t in zip(slices, processed, maps, probs, explained):
        net = _centre(np.asarray(p.array, dtype=np.float32))
        if m.shape != net.shape:  # the model's input is not the processed slice's grid: bring the map to it
            m = np.clip(cv2.resize(m, (net.shape[1], net.shape[0]), interpolation=cv2.INTER_LINEAR), 0, 1)
        geo, affine = geometry_only(predictor.pipeline, s)
        image = _centre(np.asarray(geo.array, dtype=np.float32))
        if image.shape != net.shape:
            raise DataError(f"sample {s.meta.get('sample_id', '?')!r}: the pipeline's geometric steps give "
                            f"{image.shape} but its output is {net.shape}; a non-size step changed the grid")
        region, source = region_mask(net.shape, p.mask, p.meta)
        lung = p.meta.get(LUNG_MASK)
        lung = np.asarray(lung).astype(bool) if lung is not None and np.shape(lung) == net.shape else None
        out.append(Explained(m.astype(np.float32), image, net, region, source, pr, int(t), affine, lung,
                             tuple(float(v) for v in p.spacing)))
    return out


def to_input_frame(cam: np.ndarray, affine: tuple[float, float, float, float],
                   shape: tuple[int, int]) -> np.ndarray:
    """A network-frame map resampled onto the input slice's (H, W) grid; parts the network never saw
    (cropped away) are 0."""
    sr, r0, sc, c0 = affine
    rows = (np.arange(shape[0], dtype=np.float32) + 0.5) * sr + r0 - 0.5
    cols = (np.arange(shape[1], dtype=np.float32) + 0.5) * sc + c0 - 0.5
    map_x, map_y = np.meshgrid(cols, rows)
    out = cv2.remap(cam.astype(np.float32), map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                    borderValue=0.0)
    return np.clip(out, 0.0, 1.0)


def explain_slices(predictor: Any, slices: Sequence[Slice], method: str = "gradcam",
                   layer: str | None = None, target: int | None = None) -> list[np.ndarray]:
    """One heat map per raw (HU) slice, on that slice's own pixel grid, float32 in [0, 1] — what
    `ctnodule predict --explain` attaches to each prediction."""
    with CamExplainer(predictor.model, method, layer) as cam:
        return maps_on_input(predictor, slices, cam, target)


def maps_on_input(predictor: Any, slices: Sequence[Slice], cam: CamExplainer,
                  target: int | None = None) -> list[np.ndarray]:
    """`explain_slices` with an explainer the caller holds open (e.g. to read its native grid afterwards)."""
    maps: list[np.ndarray] = []
    for start in range(0, len(slices), CHUNK):
        chunk = list(slices[start:start + CHUNK])
        for s, e in zip(chunk, explain_batch(predictor, chunk, cam, target)):
            maps.append(to_input_frame(e.cam, e.affine, s.array.shape[-2:]))
    return maps


def score(e: Explained, tolerance: float = 0.0) -> dict[str, Any]:
    """Localisation values of one sample (None where there is no outline or the map is empty), and the
    heat share inside the lungs where the pipeline segmented them (full slices)."""
    lung = lung_area = None
    if e.lung is not None and e.lung.any():
        value = cam_mass_in_mask(e.cam, e.lung)
        lung = float(value) if np.isfinite(value) else None
        lung_area = area_fraction(e.lung)
    out: dict[str, Any] = {"cam_in_mask": None, "pointing_game": None, "area_fraction": None,
                           "cam_in_mask_3mm": None, "pointing_game_3mm": None, "area_fraction_3mm": None,
                           "cam_in_lung": lung, "lung_area_fraction": lung_area}
    if e.region is None:
        return out
    out["area_fraction"] = area_fraction(e.region)
    mass = cam_mass_in_mask(e.cam, e.region)
    if np.isfinite(mass):
        out.update(cam_in_mask=mass, pointing_game=pointing_game(e.cam, e.region, tolerance))
        if e.spacing is not None:
            grown = grow_mask(e.region, GROW_MM, e.spacing)
            out.update(cam_in_mask_3mm=cam_mass_in_mask(e.cam, grown), area_fraction_3mm=area_fraction(grown),
                       pointing_game_3mm=pointing_game(e.cam, grown))
    return out


def sample_png(e: Explained, caption: str = "") -> np.ndarray:
    return sample_panels(e.image, e.cam, e.region, e.region_source, net_input=e.net_input, caption=caption)


def gallery_tile(e: Explained) -> np.ndarray:
    """The overlay with the outline, about TILE_SIDE px (kept in memory for the gallery)."""
    rgb = enlarge(overlay(e.image, e.cam), TILE_SIDE)
    if rgb.shape[0] > TILE_SIDE:
        rgb = cv2.resize(rgb, (round(rgb.shape[1] * TILE_SIDE / rgb.shape[0]), TILE_SIDE),
                         interpolation=cv2.INTER_AREA)
    return draw_region(rgb, e.region, e.region_source)


def safe_name(sample_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(sample_id))


def summarise(records: list[dict[str, Any]], tolerance: float) -> dict[str, Any]:
    """The numbers `localization.json` leads with."""
    scored = [r for r in records if r["cam_in_mask"] is not None]
    grown = [r for r in scored if r.get("cam_in_mask_3mm") is not None]
    sources: dict[str, int] = {}
    for r in records:
        sources[r["region"]] = sources.get(r["region"], 0) + 1

    def mean(key: str, rows: list[dict[str, Any]]) -> float | None:
        return float(np.mean([float(r[key]) for r in rows])) if rows else None

    return {
        "n": len(records), "n_scored": len(scored),
        "n_empty_maps": sum(1 for r in records if r["region"] != "none" and r["cam_in_mask"] is None),
        "mean_cam_in_mask": mean("cam_in_mask", scored),
        "median_cam_in_mask": float(np.median([r["cam_in_mask"] for r in scored])) if scored else None,
        "pointing_game": mean("pointing_game", scored),
        "pointing_tolerance_px": tolerance,
        "mean_area_fraction": mean("area_fraction", scored),
        # the same against the nodule grown by GROW_MM mm; its flat-map level is mean_area_fraction_3mm
        "mean_cam_in_mask_3mm": mean("cam_in_mask_3mm", grown),
        "pointing_game_3mm": mean("pointing_game_3mm", grown),
        "mean_area_fraction_3mm": mean("area_fraction_3mm", grown),
        # heat share over area share: 1 = no better than a flat map; comparable across views, whose
        # nodules fill very different shares of the image
        "mean_lift": float(np.mean([r["cam_in_mask"] / r["area_fraction"] for r in scored])) if scored else None,
        "mean_cam_in_lung": mean("cam_in_lung", [r for r in records if r.get("cam_in_lung") is not None]),
        "mean_lung_area_fraction": mean("lung_area_fraction",
                                        [r for r in records if r.get("cam_in_lung") is not None]),
        "accuracy": float(np.mean([r["pred"] == r["true"] for r in records])) if records else None,
        "region_source": sources,
    }


def write_json(path: Path, obj: dict[str, Any]) -> Path:
    from ctnodule.atomic import write_text

    return write_text(path, json.dumps(obj, indent=2, allow_nan=False) + "\n")
