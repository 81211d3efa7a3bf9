"""`evaluate_run`: score a finished run's final model on another labelled dataset (metrics.json with
patient-bootstrap CIs, predictions.csv, figures and report.html). The run is read through `ctnodule.predict`,
so its own preprocessing is applied."""

from __future__ import annotations

import warnings
from pathlib import Path

from ctnodule.errors import ConfigError
from ctnodule.evaluate.bootstrap import bootstrap_ci
from ctnodule.evaluate.metrics import compute_metrics
from ctnodule.evaluate.page import evaluation_page
from ctnodule.predict.apply import dataset_slices, prediction_rows, write_csv
from ctnodule.predict.run import load_run
from ctnodule.runfolder import write_metrics
from ctnodule.vocab import task_labels


def evaluate_run(run_dir: str | Path, data: str | Path, out: str | Path, n_boot: int = 1000,
                 force: bool = False, device: str = "cpu") -> dict:
    """Score the run's final model on another labelled dataset: `out/metrics.json`, predictions.csv,
    figures and report.html. Returns the metrics dictionary. `device`: where the model computes.

    `out` is checked before anything is computed: never a run folder (its own metrics.json and report.html
    would be overwritten), and an existing non-empty folder only with `force`. Patients of `data` the run
    was trained on are counted in `patients_seen_in_training` and named on the page: their scores are not
    an evaluation on new patients."""
    from ctnodule.atomic import atomic_dir, check_out_dir
    from ctnodule.runfolder import RunPaths, read_training_patients
    from ctnodule.runtime import check_device

    check_device(device)
    out = Path(out)
    predictor = load_run(run_dir)
    predictor.device = device
    if RunPaths(out).config.is_file() or out.resolve() == Path(run_dir).resolve():
        raise ConfigError(f"{out}: is a run folder; evaluate writes metrics.json and report.html, which would "
                          "replace the run's own: choose another --out")
    check_out_dir(out, force, "evaluation folder")
    ds, slices = dataset_slices(predictor, data)
    y = task_labels(ds.frame, predictor.task)
    proba = predictor.predict_proba(slices)
    groups = ds.groups
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        metrics = compute_metrics(y, proba, predictor.task)
        metrics["ci"] = {k: list(v) for k, v in bootstrap_ci(y, proba, predictor.task, n_boot, 0, groups).items()}
    seen = sorted(set(ds.frame["patient_id"].astype(str)) & read_training_patients(run_dir))
    metrics["n_patients"] = int(ds.frame["patient_id"].nunique())
    metrics["patients_seen_in_training"] = {"count": len(seen), "ids": seen}
    metrics["run"] = str(Path(run_dir).resolve())
    metrics["data"] = str(ds.root.resolve())
    with atomic_dir(out, force=force) as tmp:
        write_metrics(tmp, metrics)
        write_csv(tmp / "predictions.csv",
                  prediction_rows(predictor, proba, ds.frame["sample_id"].astype(str).tolist(), y))
        warning = [seen_in_training(len(seen), metrics["n_patients"])] if seen else []
        evaluation_page(run_dir, ds, predictor.view, predictor.task, predictor.class_names, metrics, y, proba,
                        warnings=warning).save(tmp / "report.html")
    return metrics


def seen_in_training(n_seen: int, n_patients: int) -> str:
    """The warning evaluate prints and puts on its page when the data shares patients with the training."""
    return (f"WARNING: {n_seen} of the {n_patients} patients evaluated here were seen in training by this run "
            "(listed in metrics.json, patients_seen_in_training): their scores measure memory, not how the "
            "model does on new patients. Evaluate on patients the run never saw.")
