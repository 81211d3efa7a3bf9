"""A click on the scan view: segment the nodule there, predict it, explain it, and describe it for drawing.

The same path as `ctnodule predict RUN SCAN --at-voxel i,j,k --explain` (`predict.volume.outlines_at` and `judge_outlines`,
`predict.volume`'s sample cut, the run's own preprocessing and TTA, `explain.core.explain_slices`), but
nothing is written: the page gets JSON with the outline per slice (voxel coordinates), the probabilities,
the calibration note and the heat map as a PNG placed on the volume's grid.
"""

from __future__ import annotations

import base64
import time
from typing import Any

import cv2
import numpy as np

from ctnodule.data.volume import Volume
from ctnodule.errors import DataError
from ctnodule.explain.overlay import colorize
from ctnodule.predict.volume import check_axial, judge_outlines, outlines_at, segmenter_label
from ctnodule.serve.model import ServedRun


def predict_at(run: ServedRun, volume: Volume, ijk: tuple[float, float, float], heatmap: bool = True) -> dict[str, Any]:
    """Segment, predict and (with `heatmap`, when the run has an image network) Grad-CAM the nodule at voxel
    `ijk` (i, j, k); `DataError` when the point is outside the volume, in air or in bone."""
    started = time.perf_counter()
    check_axial(volume)
    if not volume.contains(np.asarray(ijk)):
        i, j, k = volume.shape_ijk
        raise DataError(f"voxel {tuple(round(v, 1) for v in ijk)} is outside the scan (i < {i}, j < {j}, k < {k})")
    sp = np.asarray(volume.spacing, float)[::-1]  # (k, j, i) mm
    predictor = run.predictor
    outlines = outlines_at(predictor, volume.hu, sp, (ijk[2], ijk[1], ijk[0]))
    found = outlines[0]
    segmented = time.perf_counter()
    cam = None
    with run.lock:
        proba, [s] = judge_outlines(predictor, volume.hu, sp, [outlines], ["clicked"])
        proba = np.asarray(proba[0], float)
        reasons = predictor.attribute([s])[1][0] if predictor.has_sklearn_head else None
        predicted = time.perf_counter()
        if heatmap and run.has_image_network:
            from ctnodule.explain.core import explain_slices

            cam = explain_slices(predictor, [s], "gradcam")[0]
    done = time.perf_counter()
    world = volume.to_world(ijk)
    return {
        "click": {"i": ijk[0], "j": ijk[1], "k": ijk[2], "x_mm": float(world[0]), "y_mm": float(world[1]),
                  "z_mm": float(world[2])},
        "core": {"k": found.core[0], "j": found.core[1], "i": found.core[2]},
        "slice_index": int(s.meta["slice_index"]),
        "segmenter": segmenter_label(outlines),
        "diameter_mm": float(s.meta["mask_diameter_mm"]),
        "volume_mm3": float(s.meta["mask_volume_mm3"]),
        **prediction(run, proba),
        "reasons": reasons,
        "outline": outline(found.mask),
        "heatmap": None if cam is None or is_flat(cam) else heat_png(cam, s.meta),
        "heatmap_note": heat_note(run, heatmap, cam),
        "seconds": {"segment": round(segmented - started, 3), "predict": round(predicted - segmented, 3),
                    "heatmap": round(done - predicted, 3), "total": round(done - started, 3)},
    }


def prediction(run: ServedRun, proba: np.ndarray) -> dict[str, Any]:
    """Probabilities by class, the predicted class, the score and the calibration note."""
    names = run.class_names
    out: dict[str, Any] = {
        "task": run.task,
        "classes": [{"name": n, "p": float(p)} for n, p in zip(names, proba)],
        "predicted": names[int(np.argmax(proba))],
        "calibration_note": run.calibration_note(proba),
    }
    if run.task == "binary":
        out["p_malignant"] = float(proba[1])
    else:  # the 5-class score: the expected rating, and the share of the two malignant classes
        out["expected_rating"] = float(proba @ np.arange(1, len(names) + 1))
        out["p_malignant"] = float(proba[3:].sum())
    return out


def outline(mask: np.ndarray) -> dict[str, list[list[list[float]]]]:
    """The 3D mask's outline on each slice it crosses: {k: [polygon [[i, j], ...], ...]} in voxel units
    (pixel edges: a polygon around pixel (i, j) runs from i to i + 1)."""
    out = {}
    for k in np.flatnonzero(mask.any(axis=(1, 2))):
        big = cv2.resize(mask[k].astype(np.uint8), None, fx=4, fy=4, interpolation=cv2.INTER_NEAREST)
        contours, _ = cv2.findContours(big, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        out[str(int(k))] = [(c.reshape(-1, 2) / 4.0 + 0.125).round(3).tolist() for c in contours]
    return out


def is_flat(cam: np.ndarray) -> bool:
    """Grad-CAM keeps only positive evidence (a ReLU): a map of zeros means the image features pushed
    away from the predicted class everywhere; drawn, it would look like a uniform 'cold' map."""
    return float(np.ptp(cam)) < 1e-6


def heat_png(cam: np.ndarray, meta: dict[str, Any]) -> dict[str, Any]:
    """The heat map (on the sample's crop) as an RGBA PNG data URL and where the crop sits in the scan;
    opacity grows with the map's value, so the cold parts leave the anatomy visible."""
    rgb = colorize(cam)
    alpha = np.round(255 * np.sqrt(np.clip(cam, 0, 1))).astype(np.uint8)
    ok, png = cv2.imencode(".png", cv2.cvtColor(np.dstack([rgb, alpha]), cv2.COLOR_RGBA2BGRA))
    if not ok:
        raise DataError("could not encode the heat map")
    return {"k": int(meta["slice_index"]), "i0": int(meta["crop_c0"]), "j0": int(meta["crop_r0"]),
            "width": int(cam.shape[1]), "height": int(cam.shape[0]),
            "png": "data:image/png;base64," + base64.b64encode(png.tobytes()).decode("ascii")}


def heat_note(run: ServedRun, asked: bool, cam: np.ndarray | None = None) -> str:
    if not run.has_image_network:
        return "no heat map: this run has no image network (descriptors only), so there is nothing for Grad-CAM to weigh"
    if not asked:
        return "heat map not asked for"
    if cam is not None and is_flat(cam):
        return ("Grad-CAM is flat (zero everywhere) for this prediction: no image region pushed toward the "
                "predicted class; the decision came from the descriptors")
    return ("Grad-CAM of the predicted class over the crop the model saw, on its decision slice; "
            "it shows where the image network's features pulled, not why the descriptors decided")
