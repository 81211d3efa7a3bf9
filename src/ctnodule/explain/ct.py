"""`predict` on a whole CT: `ctnodule.predict.volume.predict_volume` plus what a reader checks first —
one PNG per nodule (the decision slice in lung window with the segmented contour; with a CAM method,
beside the heat-map overlay) — and the CSV naming them. Files are written only after every nodule was
located, segmented and predicted, so a bad input leaves nothing behind.

A heat map is only as fine as the layer it comes from: the default nodule model sees a 64-px crop, so
EfficientNet-Lite0's last layer is 2 x 2 cells, and where the image features lower the predicted class's
score (the measured size and shape decide it; LIDC-IDRI-0001's 23 mm nodule is one) Grad-CAM is <= 0 in
every cell, so after its ReLU the map is empty. Both are stated in the PNG's caption and the CSV (`cam_grid`, `cam_empty`) instead of drawing a
flat or blurred map as if it pointed somewhere. The CAM package is imported only when a map is asked
for: it costs seconds of start-up that a plain prediction does not need."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from ctnodule.data.slice import Slice
from ctnodule.errors import ConfigError
from ctnodule.explain.overlay import draw_region, enlarge, grey_rgb, sample_panels, write_png
from ctnodule.predict.apply import write_csv
from ctnodule.predict.run import load_run
from ctnodule.predict.volume import predict_volume


def predict_ct(run_dir: str | Path, source: str | Path, out: str | Path, *, at: Sequence[str] = (),
               at_voxels: Sequence[str] = (), candidates: str | Path | None = None, series_uid: str | None = None,
               mask: str | Path | None = None, method: str | None = None, force: bool = False,
               device: str = "cpu") -> pd.DataFrame:
    """Predict the located nodules of one CT volume; writes `out` (CSV, `png` column) and
    `<out stem>_nodules/<nodule>.png`. `method` (e.g. "gradcam") adds the heat map to each PNG; an existing
    `out` is replaced only with `force` (checked before anything is computed). Needs a run folder (an exported
    bundle has no network to explain or segment with)."""
    from ctnodule.atomic import check_out_file
    from ctnodule.predict.bundle import is_bundle, load_bundle
    from ctnodule.runtime import check_device

    check_device(device)
    if is_bundle(run_dir):
        load_bundle(run_dir)  # a damaged bundle says so first
        raise ConfigError(f"{run_dir}: CT-volume prediction needs the run folder, not an exported bundle")
    predictor = load_run(run_dir)
    predictor.device = device
    check_out_file(out, force, "predictions CSV")
    frame, slices = predict_volume(predictor, source, at=at, at_voxels=at_voxels, candidates=candidates,
                                   series_uid=series_uid, mask=mask)
    maps: list[np.ndarray | None] = [None] * len(slices)
    if method:
        maps, grid = _heat_maps(predictor, slices, method)
        frame["cam_grid"] = f"{grid[0]}x{grid[1]}" if grid else ""
        frame["cam_empty"] = [bool(m.max() <= 0) for m in maps]
    folder = Path(out).with_name(Path(out).stem + "_nodules")
    frame["png"] = [str(nodule_png(folder, s, cam, row)) for s, cam, row in
                    zip(slices, maps, frame.to_dict("records"))]
    write_csv(Path(out), frame)
    return frame


def _heat_maps(predictor, slices: Sequence[Slice], method: str) -> tuple[list[np.ndarray], tuple[int, int] | None]:
    """One map per sample on its own grid, and the map's native cells (rows, cols) before upsampling."""
    from ctnodule.explain.core import maps_on_input
    from ctnodule.explain.gradcam import CamExplainer

    with CamExplainer(predictor.model, method) as cam:
        return maps_on_input(predictor, slices, cam), cam.grid_


def cam_note(row: dict) -> str:
    """What the heat map can and cannot show, in one short line (the PNG's second caption line)."""
    grid = f"Grad-CAM ({row['cam_grid']} cells)" if row.get("cam_grid") else "Grad-CAM"
    if row.get("cam_empty"):
        return f"{grid}: EMPTY, no image region raises this class; the descriptors decide"
    coarse = row.get("cam_grid") and min(int(v) for v in str(row["cam_grid"]).split("x")) < 4
    return f"{grid}{': coarse, a blur rather than a location' if coarse else ''}"


def nodule_png(folder: Path, s: Slice, cam: np.ndarray | None, row: dict) -> Path:
    """The nodule's decision slice with its contour (and the heat map beside it), captioned."""
    caption = (f"{row['sample_id']}  slice {row['slice_index']}  {row['diameter_mm']:.1f} mm ({row['segmenter']} mask)  "
               f"{row['predicted']}  score {row['score']:.2f}")
    if cam is None:
        panel = draw_region(enlarge(grey_rgb(s.array), 256), s.mask)
        strip = np.full((22, panel.shape[1], 3), 255, dtype=np.uint8)
        cv2.putText(strip, caption, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        rgb = np.concatenate([strip, panel], axis=0)
    else:
        rgb = sample_panels(s.array, cam, s.mask, caption=caption)
        strip = np.full((22, rgb.shape[1], 3), 255, dtype=np.uint8)
        cv2.putText(strip, cam_note(row), (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        rgb = np.concatenate([rgb[:22], strip, rgb[22:]], axis=0)
    return write_png(folder / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', row['sample_id'])}.png", rgb)
