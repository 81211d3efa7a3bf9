"""Evaluation numbers on the real LIDC VOI sheet: the log-size baseline under patient-grouped 5-fold CV
(the bar every CNN must clear), with patient-bootstrap 95 % CIs, and the bootstrap's speed.

Run: python bench/bench_evaluate.py [path/to/lidc-voi]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ctnodule.data.splits import patient_kfold
from ctnodule.evaluate.baselines import majority_baseline, size_baseline
from ctnodule.evaluate.bootstrap import bootstrap_ci
from ctnodule.evaluate.metrics import compute_metrics
from ctnodule.vocab import task_labels

ROOT = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "shared/data/lidc-voi"


def main() -> None:
    sheet_path = ROOT / "MetadatabyNoduleMaxVoting.xlsx"
    if not sheet_path.is_file():
        print(f"skip: {sheet_path} not found")
        return
    sheet = pd.read_excel(sheet_path)
    frame = pd.DataFrame({
        "sample_id": sheet["patient_id"].astype(str) + "_R_" + sheet["nodule_id"].astype(str),
        "patient_id": sheet["patient_id"].astype(str), "malignancy": sheet["Malignancy_value"],
        "label_binary": (sheet["Malignancy_value"] >= 4).astype(int), "diameter_mm": sheet["diameter_mm"],
    })
    print(f"lidc-voi sheet: {len(frame)} nodules, {frame['patient_id'].nunique()} patients; 5-fold patient CV, seed 0")
    for task, keys in (("binary", ("roc_auc", "accuracy", "balanced_accuracy")),
                       ("multiclass", ("qwk", "accuracy", "within_one", "roc_auc"))):
        splits = patient_kfold(frame, task, folds=5, seed=0)
        y = task_labels(frame, task)
        groups = frame["patient_id"].to_numpy()
        for name, oof in (("majority", majority_baseline(frame, task, splits)),
                          ("size (log diameter, LR)", size_baseline(frame, task, splits))):
            m = compute_metrics(y, oof, task)
            ci = bootstrap_ci(y, oof, task, n_boot=1000, seed=0, groups=groups)
            cells = ", ".join(f"{k} {m[k]:.3f} [{ci[k][0]:.3f}, {ci[k][1]:.3f}]" for k in keys)
            print(f"  {task:10s} {name:24s} {cells}")
    y, p = task_labels(frame, "multiclass"), size_baseline(frame, "multiclass", patient_kfold(frame, "multiclass"))
    start = time.perf_counter()
    bootstrap_ci(y, p, "multiclass", n_boot=1000, seed=0, groups=frame["patient_id"].to_numpy())
    print(f"bootstrap: 1000 patient resamples of {len(y)} samples, 5-class, {time.perf_counter() - start:.2f} s")
    expected = np.clip(np.rint(p @ np.arange(5)), 0, 4).astype(int)
    print(f"note: size baseline 5-class QWK with arg-max {compute_metrics(y, p, 'multiclass')['qwk']:.3f}; "
          f"rounding the expected grade instead gives QWK "
          f"{compute_metrics(y, np.eye(5)[expected], 'multiclass')['qwk']:.3f}")


if __name__ == "__main__":
    main()
