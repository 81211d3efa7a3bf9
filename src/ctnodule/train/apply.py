"""Apply a finished run to new data: `evaluate_run` (a labelled dataset -> metrics + figures) and
`predict_files` (images or a dataset -> one CSV row per sample).

Both go through `load_run`, so the run's own preprocessing, size scaler, channels (2.5D) and TTA are used,
never the caller's.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ctnodule.atomic import atomic_path
from ctnodule.data.dataset import SliceDataset
from ctnodule.data.manifest import MANIFEST
from ctnodule.data.slice import Slice
from ctnodule.errors import DataError
from ctnodule.train.inputs import load_slices
from ctnodule.train.run import Predictor, load_run


def dataset_slices(predictor: Predictor, data: str | Path | SliceDataset) -> tuple[SliceDataset, list[Slice]]:
    """The run's view of `data`, loaded the way the run was trained (2.5D stacks where it used them)."""
    ds = data if isinstance(data, SliceDataset) else SliceDataset(data)
    ds = ds.view(predictor.view)
    if len(ds) == 0:
        raise DataError(f"no {predictor.view!r}-view samples here; this run needs that view", ds.root)
    return ds, load_slices(ds, predictor.channels)


def evaluate_run(run_dir: str | Path, data: str | Path, out: str | Path, n_boot: int = 1000) -> dict:
    """Score the run's final model on another labelled dataset: `out/metrics.json`, predictions.csv,
    figures and report.html. Returns the metrics dictionary."""
    from ctnodule.evaluate.bootstrap import bootstrap_ci
    from ctnodule.evaluate.metrics import compute_metrics
    from ctnodule.evaluate.plots import calibration_figure, confusion_matrix_figure, roc_figure
    from ctnodule.report.html import HtmlReport
    from ctnodule.report.model_card import write_metrics
    from ctnodule.train.splits import task_labels

    predictor = load_run(run_dir)
    ds, slices = dataset_slices(predictor, data)
    y = task_labels(ds.frame, predictor.task)
    proba = predictor.predict_proba(slices)
    groups = ds.groups
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        metrics = compute_metrics(y, proba, predictor.task)
        metrics["ci"] = {k: list(v) for k, v in bootstrap_ci(y, proba, predictor.task, n_boot, 0, groups).items()}
    metrics["run"] = str(Path(run_dir).resolve())
    metrics["data"] = str(ds.root.resolve())
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_metrics(out, metrics)
    _write_csv(out / "predictions.csv", _rows(predictor, proba, ds.frame["sample_id"].astype(str).tolist(), y))
    names = predictor.class_names
    page = HtmlReport(f"Evaluation of {Path(run_dir).name} on {ds.root.name}",
                      subtitle=f"{len(ds)} {predictor.view} samples, {predictor.task}")
    page.table(pd.DataFrame([{k: v for k, v in metrics.items() if isinstance(v, (int, float))}]), "metrics")
    page.figure(confusion_matrix_figure(y, proba.argmax(1), names), "confusion_matrix", "confusion matrix")
    page.figure(roc_figure(y, proba, names), "roc", "ROC")
    page.figure(calibration_figure(y, proba, names), "calibration", "reliability diagram")
    page.save(out / "report.html")
    return metrics


def predict_files(run_dir: str | Path, inputs: Sequence[str | Path], out: str | Path,
                  masks: Sequence[str | Path] | None = None, explain: str | None = None) -> pd.DataFrame:
    """Predict every input: image files (NRRD/NIfTI/DICOM, HU) and/or slice-dataset folders.

    `masks` (one per image file, same order) give the nodule size to models that use it; a dataset brings
    its own masks/diameters. A run with a scikit-learn head (the default) adds a `reasons` column: the top 3
    feature groups behind each answer with their signed contribution (`ctnodule.models.attribution`).
    `explain` (a CAM method name, e.g. "gradcam") adds a heat map per prediction:
    `<out stem>_heatmaps/<sample>.png` (overlay) and `.nrrd` (the map on the input's pixel grid, [0, 1]),
    named in the CSV's `heatmap` column, and for those runs a waterfall figure per prediction
    (`<out stem>_heatmaps/waterfalls/<sample>.png`, the `waterfall` column). Writes `out` (CSV) and returns
    it as a frame.
    """
    from ctnodule.data.io import read_slice

    predictor = load_run(run_dir)
    files = [Path(p) for p in inputs if not (Path(p) / MANIFEST).is_file()]
    folders = [Path(p) for p in inputs if (Path(p) / MANIFEST).is_file()]
    if masks is not None and len(masks) != len(files):
        raise DataError(f"got {len(masks)} --mask file(s) for {len(files)} image file(s); give one per image")
    parts = []
    maps_dir = Path(out).with_name(Path(out).stem + "_heatmaps")
    for folder in folders:
        ds, slices = dataset_slices(predictor, folder)
        ids = ds.frame["sample_id"].astype(str).tolist()
        rows = _rows(predictor, predictor.predict_proba(slices), ids, None, source=[str(folder)] * len(ds))
        rows = _with_reasons(rows, predictor, slices, ids, explain is not None, maps_dir)
        parts.append(_with_heatmaps(rows, predictor, slices, ids, explain, maps_dir))
    if files:
        slices = []
        for i, path in enumerate(files):
            s = read_slice(path)
            if masks:
                m = read_slice(masks[i])
                if m.array.shape != s.array.shape:
                    raise DataError(f"mask shape {m.array.shape} differs from the image's {s.array.shape}",
                                    masks[i])
                s = s.replace(mask=(m.array > 0).astype(np.uint8))
            s.meta["sample_id"] = path.name
            slices.append(s)
        ids = [p.name for p in files]
        rows = _rows(predictor, predictor.predict_proba(slices), ids, None, source=[str(p) for p in files])
        rows = _with_reasons(rows, predictor, slices, ids, explain is not None, maps_dir)
        parts.append(_with_heatmaps(rows, predictor, slices, ids, explain, maps_dir))
    if not parts:
        raise DataError("no inputs given: pass image files (NRRD/NIfTI/DICOM) or slice-dataset folders")
    frame = pd.concat(parts, ignore_index=True)
    _write_csv(Path(out), frame)
    return frame


def _rows(predictor: Predictor, proba: np.ndarray, ids: list[str], y: np.ndarray | None,
          source: list[str] | None = None) -> pd.DataFrame:
    """sample_id, [source], [y_true], proba_<class>..., predicted (class name), score.

    `score` is P(malignant) for the binary task and the expected malignancy rating sum_k p_k * k (1..5)
    for the 5-class one: a continuous number that keeps the ordinal information argmax throws away.
    """
    frame = pd.DataFrame({"sample_id": ids})
    if source is not None:
        frame["source"] = source
    if y is not None:
        frame["y_true"] = y
    names = predictor.class_names
    for c, name in enumerate(names):
        frame[f"proba_{name}"] = proba[:, c]
    frame["predicted"] = [names[i] for i in proba.argmax(1)]
    frame["score"] = proba[:, 1] if predictor.task == "binary" else proba @ np.arange(1, len(names) + 1)
    return frame


def _with_reasons(rows: pd.DataFrame, predictor: Predictor, slices: Sequence[Slice], ids: list[str], draw: bool,
                  folder: Path) -> pd.DataFrame:
    """The top reasons per prediction (scikit-learn heads) and, when `draw`, a waterfall figure each."""
    if not predictor.has_sklearn_head:
        return rows
    if not draw:
        return rows.assign(reasons=predictor.attribute(slices)[1])
    from ctnodule.explain.why import attribution_outputs

    _, words, pngs = attribution_outputs(predictor, slices, ids, folder)
    return rows.assign(reasons=words, waterfall=[str(folder / p) for p in pngs])


def _with_heatmaps(rows: pd.DataFrame, predictor: Predictor, slices: Sequence[Slice], ids: list[str],
                   method: str | None, folder: Path) -> pd.DataFrame:
    """Attach one Grad-CAM heat map per prediction (PNG overlay + NRRD map) when `method` is set."""
    if method is None:
        return rows
    import re

    from ctnodule.data.io import write_nrrd
    from ctnodule.explain.core import explain_slices
    from ctnodule.explain.overlay import overlay, write_png

    paths = []
    for s, sample_id, cam in zip(slices, ids, explain_slices(predictor, slices, method)):
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", sample_id)  # the whole id: a.nrrd and a.nii stay apart
        write_nrrd(folder / f"{name}.nrrd", cam.astype(np.float32), s.spacing)
        write_png(folder / f"{name}.png", overlay(s.array, cam))
        paths.append(str(folder / f"{name}.png"))
    return rows.assign(heatmap=paths)


def _write_csv(path: Path, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
