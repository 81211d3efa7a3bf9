"""`evaluate_run`: score a finished run's final model on another labelled dataset (metrics.json with
patient-bootstrap CIs, predictions.csv, figures and report.html). The run is read through `ctnodule.predict`,
so its own preprocessing is applied."""

from __future__ import annotations

import warnings
from pathlib import Path

from ctnodule.evaluate.bootstrap import bootstrap_ci
from ctnodule.evaluate.metrics import compute_metrics
from ctnodule.evaluate.page import evaluation_page
from ctnodule.predict.apply import dataset_slices, prediction_rows, write_csv
from ctnodule.predict.run import load_run
from ctnodule.runfolder import write_metrics
from ctnodule.vocab import task_labels


def evaluate_run(run_dir: str | Path, data: str | Path, out: str | Path, n_boot: int = 1000,
                 device: str = "cpu") -> dict:
    """Score the run's final model on another labelled dataset: `out/metrics.json`, predictions.csv,
    figures and report.html. Returns the metrics dictionary. `device`: where the model computes."""
    predictor = load_run(run_dir)
    predictor.device = device
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
    write_csv(out / "predictions.csv", prediction_rows(predictor, proba, ds.frame["sample_id"].astype(str).tolist(), y))
    evaluation_page(run_dir, ds, predictor.view, predictor.task, predictor.class_names, metrics, y,
                    proba).save(out / "report.html")
    return metrics
