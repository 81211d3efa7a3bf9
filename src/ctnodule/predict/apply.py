"""Apply a finished run to new data: `predict_files` (images or slice datasets -> one CSV row per sample)
and `dataset_slices` (a dataset as the run's model reads it).

Everything goes through `load_run`, so the run's own preprocessing, size scaler, channels (2.5D) and TTA
are used, never the caller's.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ctnodule.atomic import atomic_path
from ctnodule.data.dataset import SliceDataset
from ctnodule.data.manifest import MANIFEST
from ctnodule.data.slice import Slice
from ctnodule.errors import DataError
from ctnodule.predict.bundle import Bundle, is_bundle, load_bundle

if TYPE_CHECKING:  # the torch side is imported only when a run folder (not a bundle) is opened
    from ctnodule.predict.run import Predictor


def open_model(path: str | Path, device: str = "cpu") -> Predictor | Bundle:
    """A run folder (torch `Predictor`) or an exported bundle folder (onnxruntime `Bundle`, no torch) on
    `device`, which is checked before anything is loaded."""
    from ctnodule.runtime import check_device

    if is_bundle(path):
        return load_bundle(path, device=check_device(device, torch_backend=False))
    from ctnodule.predict.run import load_run

    check_device(device)
    predictor = load_run(path)
    predictor.device = device
    return predictor


def dataset_slices(predictor: Predictor | Bundle, data: str | Path | SliceDataset) -> tuple[SliceDataset, list[Slice]]:
    """The run's view of `data`, loaded the way the run was trained (2.5D stacks where it used them)."""
    ds = data if isinstance(data, SliceDataset) else SliceDataset(data)
    ds = ds.view(predictor.view)
    if len(ds) == 0:
        raise DataError(f"no {predictor.view!r}-view samples here; this run needs that view", ds.root)
    return ds, predictor.load_slices(ds)


def read_inputs(inputs: Sequence[str | Path], masks: Sequence[str | Path] | None = None,
                spacing: float | None = None, allow: Collection[str] = ()) -> tuple[list[Path], list[Slice]]:
    """The slice-dataset folders among `inputs`, and every image file read and checked as a CT slice
    (`ctnodule.data.checks`): all of them before any prediction, so a bad file costs nothing."""
    from ctnodule.data.checks import check_allow, check_ct_slice, fill_spacing
    from ctnodule.data.io import read_slice

    allow = check_allow(allow)
    files = [Path(p) for p in inputs if not (Path(p) / MANIFEST).is_file()]
    folders = [Path(p) for p in inputs if (Path(p) / MANIFEST).is_file()]
    if masks is not None and len(masks) != len(files):
        raise DataError(f"got {len(masks)} --mask file(s) for {len(files)} image file(s); give one per image")
    if not files and not folders:
        raise DataError("no inputs given: pass image files (NRRD/NIfTI/DICOM) or slice-dataset folders")
    slices = []
    for i, path in enumerate(files):
        if path.is_dir():
            raise DataError(f"a folder without {MANIFEST}: give image files or a slice dataset", path)
        s = read_slice(path, allow_volume="volume" in allow)
        check_ct_slice(s.array, path, allow)
        s = s.replace(spacing=fill_spacing(s.spacing, spacing, path))
        if masks:
            m = read_slice(masks[i], allow_volume="volume" in allow)
            if m.array.shape != s.array.shape:
                raise DataError(f"mask shape {m.array.shape} differs from the image's {s.array.shape}", masks[i])
            s = s.replace(mask=(m.array > 0).astype(np.uint8))
        s.meta.update(sample_id=path.name, source_file=str(path))
        slices.append(s)
    return folders, slices


def predict_inputs(predictor: Predictor | Bundle, inputs: Sequence[str | Path],
                   masks: Sequence[str | Path] | None = None, spacing: float | None = None,
                   allow: Collection[str] = ()) -> tuple[pd.DataFrame, list[Slice]]:
    """Predict every input: image files (NRRD/NIfTI/DICOM, HU) and/or slice-dataset folders.

    `masks` (one per image file, same order) give the nodule size to models that use it; a dataset brings
    its own masks/diameters. `spacing` (mm/px) is used for files whose header has none; `allow` lets
    through what `ctnodule.data.checks` otherwise refuses ("volume": the middle slice of a 3D volume,
    "0-255"). Returns one row per sample (`prediction_rows`) and the slices, in that order. A run with a
    scikit-learn head (the default) adds a `reasons` column: the top 3 feature groups behind each answer with
    their signed contribution (`Predictor.attribute`).
    """
    folders, file_slices = read_inputs(inputs, masks, spacing, allow)
    parts, all_slices = [], []
    for folder in folders:
        if isinstance(predictor, Bundle):  # workers read (and check) their own samples: reading is parallel too
            ds, slices = SliceDataset(folder, validate=False).view(predictor.view), []
            proba = predictor.predict_dataset(ds)
        else:
            ds, slices = dataset_slices(predictor, folder)
            slices = predictor.found(slices)
            proba = predictor.predict_proba(slices)
        ids = ds.frame["sample_id"].astype(str).tolist()
        parts.append(_with_found(slices, _with_reasons(predictor, slices, prediction_rows(
            predictor, proba, ids, None, source=[str(folder)] * len(ds)))))
        all_slices += slices
    if file_slices:
        ids = [s.meta["sample_id"] for s in file_slices]
        if not isinstance(predictor, Bundle):
            file_slices = predictor.found(file_slices)
        parts.append(_with_found(file_slices, _with_reasons(predictor, file_slices, prediction_rows(
            predictor, predictor.predict_proba(file_slices), ids, None,
            source=[s.meta["source_file"] for s in file_slices]))))
        all_slices += file_slices
    return pd.concat(parts, ignore_index=True), all_slices


def predict_files(run_dir: str | Path, inputs: Sequence[str | Path], out: str | Path,
                  masks: Sequence[str | Path] | None = None, spacing: float | None = None,
                  allow: Collection[str] = (), force: bool = False, device: str = "cpu") -> pd.DataFrame:
    """`predict_inputs` with the run folder or exported bundle `run_dir` on `device`, written to the CSV `out`
    (an existing file only with `force`, checked before anything is computed); returns the frame.
    (`ctnodule.explain.heatmaps.predict_with_heatmaps` adds a heat map per prediction.)"""
    from ctnodule.atomic import check_out_file

    predictor = open_model(run_dir, device)
    check_out_file(out, force, "predictions CSV")
    frame, _ = predict_inputs(predictor, inputs, masks, spacing, allow)
    write_csv(Path(out), frame)
    return frame


def prediction_rows(predictor: Predictor | Bundle, proba: np.ndarray, ids: list[str], y: np.ndarray | None,
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


def _with_reasons(predictor: Predictor | Bundle, slices: Sequence[Slice], rows: pd.DataFrame) -> pd.DataFrame:
    """`rows` with the top reasons per prediction, for runs whose head has attributions (a torch run with a
    scikit-learn head; an exported bundle carries no attribution groups)."""
    if isinstance(predictor, Bundle) or not predictor.has_sklearn_head:
        return rows
    return rows.assign(reasons=predictor.attribute(slices)[1])


def _with_found(slices: Sequence[Slice], rows: pd.DataFrame) -> pd.DataFrame:
    """`rows` with where a find-then-classify run found each nodule on its full slice (pixel row, column)
    and the found nodule's diameter; unchanged for other runs."""
    from ctnodule.preprocess.find import FOUND_KEY

    if not slices or not all(FOUND_KEY in s.meta for s in slices):
        return rows
    return rows.assign(found_r=[s.meta["found_r"] for s in slices], found_c=[s.meta["found_c"] for s in slices],
                       found_diameter_mm=[s.meta["mask_diameter_mm"] for s in slices])


def write_csv(path: Path, frame: pd.DataFrame) -> None:
    """Write `frame` as CSV atomically."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
