"""The page of `ctnodule evaluate`: a run's final model scored on another dataset.

Each metric with its 95 % patient-bootstrap CI, the confusion matrix, ROC and reliability diagram; the
synthetic banner when the data is generated, a link back to the evaluated run's model card.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ctnodule.atomic import final_path
from ctnodule.data.dataset import SliceDataset
from ctnodule.data.manifest import synthetic_info
from ctnodule.evaluate.metrics import metric_keys
from ctnodule.evaluate.plots import calibration_figure, confusion_matrix_figure, roc_figure
from ctnodule.pages import MISSING, HtmlReport, synthetic_banner
from ctnodule.runfolder import RunPaths


def evaluation_page(run_dir: str | Path, ds: SliceDataset, view: str, task: str, names: Sequence[str],
                    metrics: dict, y: np.ndarray, proba: np.ndarray, warnings: Sequence[str] = ()) -> HtmlReport:
    """The page (save it with `.save(out / "report.html")`); `warnings` are shown in red above the numbers."""
    run = Path(run_dir)
    card = RunPaths(run).report
    page = HtmlReport(f"Evaluation of {final_path(run.absolute()).name} on {final_path(ds.root.absolute()).name}",
                      subtitle=f"{len(ds)} {view} samples of {ds.frame['patient_id'].nunique()} patients, {task}",
                      banner=synthetic_banner(synthetic_info(ds.frame)),
                      nav=[("model card of the evaluated run", card)] if card.is_file() else ())
    for text in warnings:
        page.warning(text)
    ci = metrics.get("ci", {})
    rows = []
    for key in metric_keys(task):
        value = metrics.get(key)
        lo, hi = ci.get(key) or (None, None)
        rows.append({"metric": key, "value": _fmt(value, key),
                     "95% CI (patient bootstrap)": MISSING if lo is None else f"[{_fmt(lo)}, {_fmt(hi)}]"})
    page.table(pd.DataFrame(rows), caption=f"{MISSING}: not defined on these predictions (e.g. ROC-AUC when the "
               "data holds one class only)")
    page.figure(confusion_matrix_figure(y, proba.argmax(1), list(names)), "confusion_matrix",
                "Confusion matrix (rows: truth)")
    page.figure(roc_figure(y, proba, list(names)), "roc", "ROC")
    page.figure(calibration_figure(y, proba, list(names)), "calibration",
                "Reliability diagram; below, the number of samples in each bin")
    return page


def _fmt(value: float | None, key: str = "") -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return MISSING
    return str(int(value)) if key == "n" else f"{float(value):.3f}"
