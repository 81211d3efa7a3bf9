"""Radiomics standard vs our runs: pyradiomics 3D features of every VOI + logistic regression, on a run's splits.

    python bench/bench_radiomics.py ../shared/data/lidc-voi DATASET RUN [RUN ...] [--cache features.csv]

DATASET is the imported VOI dataset the runs were trained on (sample ids); each RUN is a run folder
(oof_predictions.csv, splits/). Prints the feature extraction time (wall and CPU), then per run the
radiomics baseline's out-of-fold metrics on the run's own patient-grouped folds and the paired
patient-bootstrap difference run - radiomics (AUC, QWK, accuracy).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd

from ctnodule.data import SliceDataset
from ctnodule.data.radiomics import features_3d
from ctnodule.data.splits import load_splits
from ctnodule.evaluate.baselines import radiomics_baseline
from ctnodule.evaluate.compare import compare_oof
from ctnodule.evaluate.metrics import compute_metrics
from ctnodule.runfolder import read_oof
from ctnodule.vocab import task_labels


def extract(src: Path, frame: pd.DataFrame, cache: Path | None) -> pd.DataFrame:
    """3D features per sample_id (from the cache file when it has every sample)."""
    if cache is not None and cache.is_file():
        table = pd.read_csv(cache, dtype={"sample_id": str}).set_index("sample_id")
        if set(frame["sample_id"]) <= set(table.index):
            print(f"features: read from {cache}")
            return table
    wall, cpu = time.perf_counter(), time.process_time()
    rows = {}
    for sid, patient, nodule in zip(frame["sample_id"], frame["patient_id"], frame["nodule_id"]):
        name = f"{patient}_R_{nodule}.nii.gz"
        rows[sid] = features_3d(src / "image" / name, src / "nodule_mask" / name)
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "sample_id"
    print(f"features: {table.shape[1]} per VOI, {len(table)} VOIs in {time.perf_counter() - wall:.1f} s wall, "
          f"{time.process_time() - cpu:.1f} s CPU (shared machine); {int(table.isna().all(axis=1).sum())} VOIs "
          "without features (median-imputed)")
    if cache is not None:
        table.to_csv(cache)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path)
    parser.add_argument("dataset", type=Path)
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--cache", type=Path, default=None)
    args = parser.parse_args()
    frame = SliceDataset(args.dataset, validate=False).frame
    table = extract(args.src, frame, args.cache)
    frame = frame.drop(columns=[c for c in frame if c.startswith("radiomics_")]).join(table, on="sample_id")
    for run in args.runs:
        task = "multiclass" if "proba_4" in read_oof(run).columns else "binary"
        splits = load_splits(run, frame)
        wall = time.perf_counter()
        oof = radiomics_baseline(frame, task, splits, frame[sorted(table.columns)].to_numpy(dtype=float))
        fit_s = time.perf_counter() - wall
        y = task_labels(frame, task)
        metrics = {k: v for k, v in compute_metrics(y, oof, task).items() if k != "per_class"}
        print(f"\n{run} ({task}): radiomics + LR on its {len(splits)} folds (fit {fit_s:.1f} s):")
        print(json.dumps({k: round(v, 3) for k, v in metrics.items()}))
        ours = read_oof(run)
        theirs = pd.DataFrame({"sample_id": frame["sample_id"], "patient_id": frame["patient_id"], "y_true": y,
                               **{f"proba_{k}": oof[:, k] for k in range(oof.shape[1])}})
        diff = compare_oof(ours, theirs, task, n_boot=2000, seed=0)
        print(f"run - radiomics (paired patient bootstrap, n = {diff.pop('n')}):")
        for key, d in diff.items():
            print(f"  {key}: run {d['a']:.3f}, radiomics {d['b']:.3f}, diff {d['diff']:+.3f} "
                  f"[{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}], P(run not better) {d['p_a_not_better']:.3f}")


if __name__ == "__main__":
    main()
