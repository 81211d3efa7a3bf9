"""`predict --explain`: predictions with one Grad-CAM heat map each (PNG overlay + NRRD map on the
input's pixel grid), built on the predict stage."""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ctnodule.data.io import write_nrrd
from ctnodule.data.slice import Slice
from ctnodule.explain.core import explain_slices
from ctnodule.explain.overlay import overlay, write_png
from ctnodule.predict.apply import predict_inputs, write_csv
from ctnodule.predict.run import Predictor, load_run


def predict_with_heatmaps(run_dir: str | Path, inputs: Sequence[str | Path], out: str | Path,
                          masks: Sequence[str | Path] | None = None, method: str = "gradcam",
                          spacing: float | None = None, allow: Collection[str] = (),
                          force: bool = False) -> pd.DataFrame:
    """Predict like `predict_files` and add a heat map per prediction: `<out stem>_heatmaps/<sample>.png`
    (overlay) and `.nrrd` (the map on the input's pixel grid, [0, 1]), named in the CSV's `heatmap` column."""
    from ctnodule.atomic import check_out_file

    predictor = load_run(run_dir)
    check_out_file(out, force, "predictions CSV")
    frame, slices = predict_inputs(predictor, inputs, masks, spacing, allow)
    folder = Path(out).with_name(Path(out).stem + "_heatmaps")
    frame = frame.assign(heatmap=write_heatmaps(predictor, slices, frame["sample_id"].tolist(), method, folder))
    write_csv(Path(out), frame)
    return frame


def write_heatmaps(predictor: Predictor, slices: Sequence[Slice], ids: list[str], method: str,
                   folder: Path) -> list[str]:
    """One heat map per slice (PNG overlay + NRRD map); returns the PNG paths."""
    paths = []
    for s, sample_id, cam in zip(slices, ids, explain_slices(predictor, slices, method)):
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", sample_id)  # the whole id: a.nrrd and a.nii stay apart
        write_nrrd(folder / f"{name}.nrrd", cam.astype(np.float32), s.spacing)
        write_png(folder / f"{name}.png", overlay(s.array, cam))
        paths.append(str(folder / f"{name}.png"))
    return paths
