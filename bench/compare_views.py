"""The price of not cropping: a full-view run on composites beside a nodule-view run on the same nodules.

Each composite names its nodule sample (`nodule_sample_id` in the composite manifest), so both runs'
out-of-fold predictions are scored on exactly the same nodules. Printed per pair: the mean and sd over
folds of AUC (binary) or QWK and accuracy (5-class), the pooled out-of-fold number of each run, the paired
patient-bootstrap 95 % CI of full - nodule, whether the two runs used the same patient folds, and the
pooled numbers apart for juxta-pleural nodules (their wall is not pasted: see `juxta_pleural`).

Run: python bench/compare_views.py COMPOSITE_DATA FULL_RUN NODULE_RUN [FULL_RUN NODULE_RUN ...]
     python bench/compare_views.py COMPOSITE_DATA --unseen UNSEEN_RUN FULL_RUN
(the second: per background patient, the predictions of `bench_view_cv.py --split background` beside the
plain CV's on the same composites)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from ctnodule.evaluate.bootstrap import resample_counts, weighted_auc, weighted_metrics
from ctnodule.evaluate.metrics import compute_metrics


def _oof(run: Path) -> tuple[pd.DataFrame, str]:
    frame = pd.read_csv(run / "oof_predictions.csv")
    task = "binary" if sum(c.startswith("proba_") for c in frame.columns) == 2 else "multiclass"
    return frame, task


def _scores(task: str, y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    m = compute_metrics(y, p, task)
    return {"auc": m["roc_auc"]} if task == "binary" else {"qwk": m["qwk"], "accuracy": m["accuracy"]}


def compare(data: Path, full_run: Path, nodule_run: Path, n_boot: int = 2000) -> list[dict]:
    manifest = pd.read_csv(data / "manifest.csv").set_index("sample_id")
    full, task = _oof(full_run)
    nodule, task2 = _oof(nodule_run)
    if task != task2:
        raise SystemExit(f"{full_run} is {task}, {nodule_run} is {task2}")
    full["nodule_sample_id"] = manifest.loc[full["sample_id"], "nodule_sample_id"].to_numpy()
    full["juxta"] = manifest.loc[full["sample_id"], "juxta_pleural"].to_numpy()
    pair = full.merge(nodule, left_on="nodule_sample_id", right_on="sample_id", suffixes=("_f", "_n"))
    cols = sorted(c for c in full.columns if c.startswith("proba_"))
    pf = pair[[f"{c}_f" for c in cols]].to_numpy()
    pn = pair[[f"{c}_n" for c in cols]].to_numpy()
    y = pair["y_true_f"].to_numpy()
    same_folds = bool((pair.groupby("fold_f")["fold_n"].nunique() == 1).all())
    rows = []
    for name, sel in (("all", np.ones(len(pair), bool)), ("juxta-pleural", pair["juxta"].to_numpy() == 1),
                      ("not juxta-pleural", pair["juxta"].to_numpy() == 0)):
        row = {"task": task, "nodules": name, "n": int(sel.sum()), "same_folds": same_folds}
        for view, p in (("full", pf), ("nodule", pn)):
            for key, value in _scores(task, y[sel], p[sel]).items():
                row[f"{view}_{key}"] = round(value, 3)
            if name == "all":
                per_fold = [_scores(task, y[pair["fold_f"] == k], p[pair["fold_f"] == k])
                            for k in sorted(pair["fold_f"].unique())]
                for key in per_fold[0]:
                    vals = np.array([f[key] for f in per_fold])
                    row[f"{view}_{key}_folds"] = f"{vals.mean():.3f} ± {vals.std(ddof=1):.3f}"
        if name == "all":
            counts = np.vstack([np.ones(len(y)), resample_counts(len(y), n_boot, 0, pair["patient_id_f"].to_numpy())])
            if task == "binary":
                diff = weighted_auc(pf[:, 1], y == 1, counts) - weighted_auc(pn[:, 1], y == 1, counts)
                row["full-nodule auc [95% CI]"] = _ci(diff)
            else:
                a, b = weighted_metrics(y, pf, task, counts), weighted_metrics(y, pn, task, counts)
                row["full-nodule qwk [95% CI]"] = _ci(a["qwk"] - b["qwk"])
        rows.append(row)
    return rows


def unseen(data: Path, unseen_run: Path, seen_run: Path) -> pd.DataFrame:
    """Per held-out background patient: metrics with that background unseen vs seen in training."""
    manifest = pd.read_csv(data / "manifest.csv").set_index("sample_id")
    a, task = _oof(unseen_run)
    b, _ = _oof(seen_run)
    pair = a.merge(b, on="sample_id", suffixes=("_u", "_s"))
    pair["bg"] = manifest.loc[pair["sample_id"], "bg_patient_id"].to_numpy()
    cols = sorted(c.removesuffix("_u") for c in pair.columns if c.startswith("proba_") and c.endswith("_u"))
    rows = []
    for bg, part in [*pair.groupby("bg"), ("all (pooled)", pair)]:
        y = part["y_true_u"].to_numpy()
        row = {"held_out_background": bg, "n_test": len(part)}
        for tag, suffix in (("unseen", "_u"), ("seen", "_s")):
            for key, value in _scores(task, y, part[[c + suffix for c in cols]].to_numpy()).items():
                row[f"{tag}_{key}"] = round(value, 3)
        rows.append(row)
    return pd.DataFrame(rows)


def _ci(diff: np.ndarray) -> str:
    lo, hi = np.nanpercentile(diff[1:], [2.5, 97.5])
    return f"{diff[0]:+.3f} [{lo:+.3f}, {hi:+.3f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("runs", type=Path, nargs="+", help="pairs: FULL_RUN NODULE_RUN")
    ap.add_argument("--unseen", type=Path, default=None, help="a --split background run; RUNS: the plain CV run")
    args = ap.parse_args()
    if args.unseen:
        print(unseen(args.data, args.unseen, args.runs[0]).to_string(index=False))
        return
    if len(args.runs) % 2:
        raise SystemExit("give runs in pairs: FULL_RUN NODULE_RUN")
    for full_run, nodule_run in zip(args.runs[::2], args.runs[1::2]):
        print(f"\n{full_run.name} (full) vs {nodule_run.name} (nodule)")
        print(pd.DataFrame(compare(args.data, full_run, nodule_run)).to_string(index=False))


if __name__ == "__main__":
    main()
