"""Real-data numbers for the classifiers (issue 4): accuracy of the default preset against the size
baseline, training time of default vs seed, inference speed.

    python bench/bench_train.py --data DATASET --out DIR [--tasks binary multiclass] [--seed-folds 1]

1. `default` preset, 5-fold patient-grouped CV, per task: pooled out-of-fold AUC / QWK / accuracy with
   95 % patient-bootstrap CIs, beside the nodule-size logistic regression on the same splits.
2. Training wall time of `default` (whole CV + final model) and of `seed` on `--seed-folds` folds
   (the seed fine-tunes a CNN for up to 50 epochs; its full-CV time is extrapolated as per-fold time x
   (folds + 1) and printed as an estimate unless `--seed-folds 5`).
3. Inference: slices/s of `Predictor.predict_proba` end to end (HU slice -> preprocessing -> network),
   and of the network alone on prepared tensors.
Runs are kept under DIR (reused when present; delete DIR to re-measure).
"""

from __future__ import annotations

import argparse
import json
import math
import time
import warnings
from pathlib import Path

import numpy as np


def _fmt(metrics: dict, key: str) -> str:
    lo, hi = metrics.get("ci", {}).get(key, (float("nan"), float("nan")))
    return f"{metrics[key]:.3f} [{lo:.3f}, {hi:.3f}]" if not math.isnan(lo) else f"{metrics[key]:.3f}"


def main() -> None:
    from ctnodule.data.dataset import SliceDataset
    from ctnodule.data.splits import patient_kfold
    from ctnodule.errors import ConfigError
    from ctnodule.predict.run import load_run
    from ctnodule.preprocess.inputs import load_slices
    from ctnodule.recipe import load_preset
    from ctnodule.runtime import tune_malloc
    from ctnodule.train.fold import train_fold
    from ctnodule.vocab import task_labels
    from ctnodule.workflow import train_and_report

    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="runs/bench/voi", help="a VOI slice dataset (ctnodule import voi ...)")
    ap.add_argument("--out", default="runs/bench/train")
    ap.add_argument("--tasks", nargs="+", default=["binary", "multiclass"])
    ap.add_argument("--seed-folds", type=int, default=1)
    ap.add_argument("--seed-epochs", type=int, default=None, help="cap the seed preset's epochs (default: its 50)")
    args = ap.parse_args()
    tune_malloc()
    warnings.simplefilter("ignore")
    out = Path(args.out)
    ds = SliceDataset(args.data)
    quiet = {"log": lambda m: None}
    default_seconds = {}
    for task in args.tasks:
        run = out / f"default-{task}"
        if not (run / "metrics.json").is_file():
            t0 = time.perf_counter()
            train_and_report(ds, run, load_preset("default", task=task), force=True, **quiet)
            default_seconds[task] = time.perf_counter() - t0
        m = json.loads((run / "metrics.json").read_text())
        default_seconds.setdefault(task, m.get("train_seconds", float("nan")))
        size = m["baselines"]["size"]
        print(f"[{task}] default preset, n={m['n']}, {len(m['folds'])}-fold patient-grouped CV (pooled OOF, 95% CI)")
        for key in ("roc_auc", "accuracy", "balanced_accuracy", "f1_macro") + (("qwk", "within_one") if task == "multiclass" else ()):
            print(f"  {key:18s} model {_fmt(m, key):28s} size baseline {size[key]:.3f}")
        aucs = [f["roc_auc"] for f in m["folds"]]
        print(f"  per-fold roc_auc mean {np.mean(aucs):.3f} ± {np.std(aucs, ddof=1):.3f}; training {default_seconds[task]:.0f} s")

    task = args.tasks[0]
    frame = ds.view("nodule").frame
    seed_cfg = load_preset("seed", task=task, epochs=args.seed_epochs)
    slices = load_slices(ds.view("nodule"), seed_cfg.channels)
    y = task_labels(frame, task)
    splits = patient_kfold(frame, task, 5, 0)
    try:
        from ctnodule.preprocess import Pipeline, PreprocessConfig

        list(Pipeline.from_config(PreprocessConfig.seed("nodule")).fit(slices).transform_many(slices, workers=1))
    except ConfigError as exc:
        print(f"[time] NOTE: the seed preprocessing fails on this data ({str(exc)[:90]}...); timing the seed "
              "training recipe on the default 64 px crops instead (same network cost per pixel)")
        seed_cfg = seed_cfg.model_copy(update={"preprocess": "default"})
    t0 = time.perf_counter()
    epochs = []
    for k in range(args.seed_folds):
        _, hist, _ = train_fold(seed_cfg, slices, frame, y, splits[k][0], k, out / f"seed-fold{k}.last.pt", **quiet)
        epochs.append(len(hist))
    per_fold = (time.perf_counter() - t0) / args.seed_folds
    per_epoch = per_fold / max(np.mean(epochs), 1)
    d = default_seconds[task]
    if args.seed_epochs is None and args.seed_folds == 5:
        print(f"[time] seed preset, measured: {per_fold * 6:.0f} s (5 folds + final); default {d:.0f} s; "
              f"default/seed = {d / (per_fold * 6):.3f}")
    else:
        lo, hi = per_epoch * 11 * 6, per_epoch * 50 * 6  # early stopping (patience 10) needs >= 11 epochs
        print(f"[time] seed preset: {per_epoch:.0f} s per epoch per fold ({epochs} epochs timed); its full CV "
              f"(5 folds + final, 11..50 epochs each) takes {lo:.0f}..{hi:.0f} s; default {d:.0f} s -> "
              f"default/seed between {d / hi:.3f} and {d / lo:.3f}")

    pred = load_run(out / f"default-{task}")
    sl = pred.load_slices(ds)
    t0, c0 = time.perf_counter(), time.process_time()
    pred.predict_proba(sl)
    e2e, e2e_cpu = len(sl) / (time.perf_counter() - t0), len(sl) / (time.process_time() - c0)
    x = pred.prepare(sl)
    import torch

    pred.model.eval().to(memory_format=torch.channels_last)
    x = x.contiguous(memory_format=torch.channels_last)
    t0, c0 = time.perf_counter(), time.process_time()
    with torch.inference_mode():
        for s in range(0, len(x), 256):
            pred.model.bind_extra(None if pred.model.n_extra == 0 else torch.zeros(len(x[s:s + 256]), pred.model.n_extra))
            pred.model(x[s:s + 256])
    net, net_cpu = len(x) / (time.perf_counter() - t0), len(x) / (time.process_time() - c0)
    print(f"[inference] {len(sl)} nodule slices: end to end {e2e:.0f} slices/s wall, {e2e_cpu:.0f} per CPU-second "
          f"(TTA={pred.config.get('tta')}: 4 flipped views); network alone {net:.0f} slices/s wall, "
          f"{net_cpu:.0f} per CPU-second (one view, batch 256). Wall numbers depend on other load on the cores.")


if __name__ == "__main__":
    main()
