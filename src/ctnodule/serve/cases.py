"""The dataset view: the run's out-of-fold predictions beside the manifest (true class, every reader's
rating), a thumbnail per row and a detail panel (the 2.5D slices, the mask, the heat map).

Probabilities are the out-of-fold ones (each from the fold model that never saw the sample). The heat map
comes from the final model, which was refitted on every sample including this one: the panel says so.
Samples are looked up by id in the manifest, so no file path ever comes from the client.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from ctnodule.data.dataset import SliceDataset
from ctnodule.data.manifest import synthetic_info
from ctnodule.data.slice import Slice
from ctnodule.errors import DataError
from ctnodule.explain.overlay import draw_region, enlarge, grey_rgb, overlay
from ctnodule.pages import synthetic_banner
from ctnodule.preprocess.inputs import load_slice
from ctnodule.serve.model import ServedRun
from ctnodule.serve.nodule import heat_note, is_flat, prediction

THUMB_SIDE = 72
PANEL_SIDE = 192
IMAGE_KINDS = ("slice-0", "slice-1", "slice-2", "mask", "heat")


class Cases:
    """The out-of-fold table of `run` on `data` (the run's own view), and images of its samples."""

    def __init__(self, run: ServedRun, data: str | Path):
        self.run = run
        self.dataset = SliceDataset(data, validate=False).view(run.predictor.view)
        self.index = {sid: i for i, sid in enumerate(self.dataset.frame["sample_id"].astype(str))}
        missing = set(run.oof["sample_id"]) - set(self.index)
        if len(missing) == len(run.oof):
            raise DataError(f"none of the run's {len(run.oof)} out-of-fold samples is in this dataset; give the "
                            "dataset the run was trained on (--data)", data)
        self.missing = len(missing)
        self.banner = synthetic_banner(synthetic_info(self.dataset.frame))
        self._images: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._cams: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    @functools.cached_property
    def rows(self) -> list[dict[str, Any]]:
        """One JSON-ready row per out-of-fold sample found in the dataset."""
        names = self.run.class_names
        proba = self.run.oof_proba
        manifest = self.dataset.frame.set_index(self.dataset.frame["sample_id"].astype(str))
        out = []
        for r, p in zip(self.run.oof.to_dict("records"), proba):
            sid = str(r["sample_id"])
            if sid not in self.index:
                continue
            m = manifest.loc[sid]
            ratings = _ratings(m.get("reader_ratings"))
            pred = int(np.argmax(p))
            out.append({
                "sample_id": sid, "patient_id": str(r["patient_id"]), "fold": int(r["fold"]),
                "true": names[int(r["y_true"])], "y_true": int(r["y_true"]), "predicted": names[pred], "y_pred": pred,
                "p_predicted": float(p[pred]),
                "p_malignant": float(p[1]) if self.run.task == "binary" else float(p[3:].sum()),
                "correct": pred == int(r["y_true"]),
                "malignancy": _number(m.get("malignancy")),
                "diameter_mm": _number(m.get("mask_diameter_mm", m.get("diameter_mm"))),
                "readers": ratings,
                "disagreement": (max(ratings) - min(ratings)) if len(ratings) >= 2 else None,
                "reader_match": _text(m.get("reader_match")),
            })
        return out

    def table(self) -> dict[str, Any]:
        return {"rows": self.rows, "class_names": self.run.class_names, "task": self.run.task,
                "has_readers": any(r["readers"] for r in self.rows), "missing": self.missing,
                "banner": self.banner, "data": str(self.dataset.root)}

    def detail(self, sample_id: str) -> dict[str, Any]:
        row = next((r for r in self.rows if r["sample_id"] == sample_id), None)
        if row is None:
            raise KeyError(sample_id)
        s = self._sample(sample_id)
        n_slices = 1 if s.array.ndim == 2 else s.array.shape[0]
        proba = self.run.oof_proba[self.run.oof["sample_id"].to_numpy() == sample_id][0]
        cam = self._cam(sample_id, s) if self.run.has_image_network else None
        flat = cam is not None and is_flat(cam)
        note = heat_note(self.run, True, cam) if cam is None or flat else \
            ("Grad-CAM from the final model, which was refitted on all samples including this one; the "
             "probabilities are out-of-fold (the fold model that never saw it)")
        return {**row, **prediction(self.run, proba),
                "slices": [f"slice-{i}" for i in range(n_slices)],
                "has_mask": s.mask is not None and bool(np.any(s.mask)),
                "has_heatmap": cam is not None and not flat,
                "spacing_mm": [float(v) for v in s.spacing], "heatmap_note": note}

    def _cam(self, sample_id: str, s: Slice) -> np.ndarray:
        """The final model's Grad-CAM of a sample (kept: the detail and its heat image both need it)."""
        with self._lock:
            if sample_id in self._cams:
                return self._cams[sample_id]
        from ctnodule.explain.core import explain_slices

        with self.run.lock:
            cam = explain_slices(self.run.predictor, [s], "gradcam")[0]
        with self._lock:
            self._cams[sample_id] = cam
            while len(self._cams) > 500:
                self._cams.popitem(last=False)
        return cam

    def thumbnail(self, sample_id: str) -> bytes:
        return self._cached(sample_id, "thumb", lambda s: _png(_fit(draw_region(
            enlarge(grey_rgb(_centre(s.array)), THUMB_SIDE), s.mask), THUMB_SIDE)))

    def image(self, sample_id: str, kind: str) -> bytes:
        """A detail-panel image: one of the 2.5D slices, the mask over the centre slice, or the heat map."""
        if kind not in IMAGE_KINDS:
            raise KeyError(kind)
        return self._cached(sample_id, kind, lambda s: _png(self._render(s, kind)))

    def _render(self, s: Slice, kind: str) -> np.ndarray:
        if kind.startswith("slice-"):
            stack = s.array if s.array.ndim == 3 else s.array[None]
            n = int(kind.split("-")[1])
            if n >= len(stack):
                raise KeyError(kind)
            return enlarge(grey_rgb(stack[n]), PANEL_SIDE)
        if kind == "mask":
            if s.mask is None:
                raise KeyError(kind)
            grey = enlarge(grey_rgb(_centre(s.array)), PANEL_SIDE)
            big = cv2.resize(np.asarray(s.mask, np.uint8), grey.shape[1::-1], interpolation=cv2.INTER_NEAREST) > 0
            tint = grey.copy()
            tint[big] = (0.5 * tint[big] + 0.5 * np.array([0, 255, 0])).astype(np.uint8)
            return draw_region(tint, s.mask)
        if not self.run.has_image_network:
            raise KeyError(kind)
        cam = self._cam(str(s.meta["sample_id"]), s)
        return draw_region(enlarge(overlay(_centre(s.array), cam), PANEL_SIDE), s.mask)

    @functools.lru_cache(maxsize=32)  # noqa: B019 - one Cases per process; a detail panel asks for 5 images
    def _sample(self, sample_id: str) -> Slice:
        if sample_id not in self.index:
            raise KeyError(sample_id)
        return load_slice(self.dataset, self.index[sample_id], self.run.predictor.channels)

    def _cached(self, sample_id: str, kind: str, make) -> bytes:
        key = (sample_id, kind)
        with self._lock:
            if key in self._images:
                self._images.move_to_end(key)
                return self._images[key]
        data = make(self._sample(sample_id))
        with self._lock:
            self._images[key] = data
            while len(self._images) > 4000:
                self._images.popitem(last=False)
        return data


def _centre(a: np.ndarray) -> np.ndarray:
    return a if a.ndim == 2 else a[a.shape[0] // 2]


def _fit(rgb: np.ndarray, side: int) -> np.ndarray:
    scale = side / max(rgb.shape[:2])
    if scale >= 1:
        return rgb
    return cv2.resize(rgb, (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale))),
                      interpolation=cv2.INTER_AREA)


def _png(rgb: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise DataError("could not encode a PNG")
    return data.tobytes()


def _ratings(value: Any) -> list[int]:
    if not isinstance(value, str):
        return []
    return [int(x) for x in value.split(";") if x.strip()]


def _number(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) else None


def _text(value: Any) -> str | None:
    return None if value is None or (isinstance(value, float) and np.isnan(value)) or pd.isna(value) else str(value)
