"""What `ctnodule evaluate RUN DATA --out DIR` leaves behind: metrics.json, figures and a short page.

The training engine applies the saved model to the other dataset and hands the predictions here, in the
out-of-fold file's format (sample_id, patient_id, y_true, proba_0..proba_{C-1}); this module judges them
exactly like the run's own out-of-fold predictions, so the two metrics.json files compare key for key.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ctnodule.evaluate.bootstrap import bootstrap_ci
from ctnodule.evaluate.metrics import class_names, compute_metrics, metric_keys
from ctnodule.evaluate.summary import oof_arrays

PREDICTIONS_FILE = "predictions.csv"


def write_evaluation(
    out_dir: str | Path, predictions: pd.DataFrame, task: str, n_boot: int = 1000, seed: int = 0,
    title: str = "External evaluation",
) -> Path:
    """Write `out_dir/metrics.json` (metrics + patient-bootstrap `ci`), `predictions.csv`, `figures/*.png`
    and `report.html`; returns the metrics.json path."""
    from ctnodule.atomic import atomic_path
    from ctnodule.evaluate import plots
    from ctnodule.report.html import HtmlReport
    from ctnodule.report.model_card import write_metrics

    out = Path(out_dir)
    y, proba = oof_arrays(predictions, task)
    metrics = compute_metrics(y, proba, task)
    groups = predictions["patient_id"].astype(str).to_numpy() if "patient_id" in predictions.columns else None
    ci = bootstrap_ci(y, proba, task, n_boot=n_boot, seed=seed, groups=groups)
    metrics["ci"] = {k: [lo, hi] for k, (lo, hi) in ci.items()}
    path = write_metrics(out, metrics)
    with atomic_path(out / PREDICTIONS_FILE) as tmp:
        predictions.to_csv(tmp, index=False)

    names = class_names(task)
    patients = predictions["patient_id"].nunique() if groups is not None else "not recorded"
    page = HtmlReport(title, subtitle=f"{len(y)} samples, {patients} patients, task {task}")
    rows = [{"metric": k, "value": str(metrics[k]) if k == "n" else f"{metrics[k]:.3f}",
             "95% CI": "" if k == "n" else f"{ci[k][0]:.3f} - {ci[k][1]:.3f}"} for k in metric_keys(task)]
    page.heading("Metrics").table(pd.DataFrame(rows), caption="Bootstrap CIs resample patients when known")
    page.heading("Figures")
    page.figure(plots.confusion_matrix_figure(y, proba.argmax(axis=1), names), "confusion_matrix", "Confusion matrix")
    page.figure(plots.roc_figure(y, proba, names), "roc", "ROC")
    page.figure(plots.calibration_figure(y, proba, names), "calibration", "Reliability diagram")
    page.save(out / "report.html")
    return path
