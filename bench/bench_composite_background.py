"""Full-view models on composites whose background slices were never seen in training.

In the plain patient-grouped CV of a composite dataset (grouped by the NODULE's patient) every test
composite's background patient also supplies backgrounds to training: with 4 background patients the model
may learn their anatomy. Here each background patient P is left out in turn: test = the composites placed
in P's slices, train = the composites placed in the other patients' slices whose nodule patient has no
composite in the test set (so no nodule patient is on both sides either). Printed beside it: the same test
composites' out-of-fold predictions from a standard CV run (backgrounds seen), if RUN is given.

Run: python bench/bench_composite_background.py DATA --task binary [--tabular none] [--run RUN]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ctnodule.data.dataset import SliceDataset
from ctnodule.evaluate.metrics import compute_metrics
from ctnodule.preprocess.inputs import load_slices
from ctnodule.recipe import load_preset
from ctnodule.train.fold import train_fold
from ctnodule.vocab import task_labels


def _score(task: str, y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    m = compute_metrics(y, proba, task)
    keys = ("roc_auc",) if task == "binary" else ("accuracy", "qwk", "roc_auc")
    return {k: round(float(m[k]), 3) for k in keys if k in m}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("--task", default="binary", choices=["binary", "multiclass"])
    ap.add_argument("--preset", default="default")
    ap.add_argument("--tabular", default=None)
    ap.add_argument("--run", type=Path, default=None, help="a standard CV run on DATA: its OOF predictions")
    args = ap.parse_args()
    cfg = load_preset(args.preset, view="full", task=args.task, tabular=args.tabular)
    ds = SliceDataset(args.data).view("full")
    frame = ds.frame
    y = task_labels(frame, args.task)
    slices = load_slices(ds, cfg.channels)
    oof = pd.read_csv(args.run / "oof_predictions.csv").set_index("sample_id") if args.run else None
    rows = []
    t0 = time.perf_counter()
    bg = frame["bg_patient_id"].astype(str).to_numpy()
    patients = frame["patient_id"].astype(str).to_numpy()
    for k, held in enumerate(sorted(set(bg))):
        test = np.nonzero(bg == held)[0]
        train = np.nonzero((bg != held) & ~np.isin(patients, patients[test]))[0]
        with tempfile.TemporaryDirectory() as tmp:
            _, _, proba = train_fold(cfg, slices, frame, y, train, k, Path(tmp) / "state.pt", log=lambda s: None,
                                     predict_idx=test)
        row = {"held_out_background": held, "n_train": len(train), "n_test": len(test),
               **{f"unseen_{k2}": v for k2, v in _score(args.task, y[test], proba).items()}}
        if oof is not None:
            seen = oof.loc[frame["sample_id"].to_numpy()[test]]
            cols = [c for c in seen.columns if c.startswith("proba_")]
            row.update({f"seen_{k2}": v for k2, v in _score(args.task, y[test], seen[cols].to_numpy()).items()})
        rows.append(row)
        print(row, flush=True)
    table = pd.DataFrame(rows)
    print(f"\n{args.preset} preset, tabular={cfg.tabular}, task={args.task}, {time.perf_counter() - t0:.0f} s")
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
