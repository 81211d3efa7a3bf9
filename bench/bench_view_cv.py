"""Patient-grouped k-fold CV of training recipes on one dataset in one process, each lung mask computed once.

`ctnodule train` preprocesses every slice again in every fold (the pipeline is fitted on the fold's
training rows), which is right but costs ~6 passes of the watershed lung mask over 798 full 512 x 512
slices per run: too slow for several full-view runs on 2 shared cores. The lung mask depends on the
slice only (nothing in it is fitted), so here it is memoised by the slice's pixels; everything else runs
exactly as in `ctnodule train` (`train_fold` per fold on the same `patient_kfold` splits, the fitted
pipeline, the feature cache, the head). No final refit. Writes `OUT/NAME/oof_predictions.csv` (the
columns of a run's) and prints pooled and per-fold metrics.

`--split background` (composites): instead of patient-grouped k-fold, each background patient P is left
out in turn: test = the composites placed in P's slices, train = those placed in the other patients'
slices whose nodule patient has no composite in the test set (no nodule patient on both sides either).
The test composites' backgrounds were never seen in training; compare with the same samples' predictions
from the plain CV (`bench/compare_views.py --subset`).

Run: python bench/bench_view_cv.py DATA OUT --view full --task binary --task multiclass \
        [--preset default] [--tabular descriptors --tabular none] [--epochs N] [--batch-size N] [--preprocess YAML]
        [--no-mask-augment] [--segmenter classical]
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ctnodule.data.dataset import SliceDataset
from ctnodule.data.splits import patient_kfold
from ctnodule.evaluate.metrics import compute_metrics
from ctnodule.preprocess import lungmask
from ctnodule.preprocess.inputs import load_slices
from ctnodule.recipe import load_preset
from ctnodule.train.fold import train_fold
from ctnodule.vocab import task_labels

_MASKS: dict[bytes, np.ndarray] = {}
_lung_mask_array = lungmask.lung_mask_array


def _memo_lung_mask(hu: np.ndarray, spacing, *args, **kwargs) -> np.ndarray:
    key = hashlib.sha1(np.ascontiguousarray(hu).tobytes() + repr((spacing, args, kwargs)).encode()).digest()
    if key not in _MASKS:
        _MASKS[key] = _lung_mask_array(hu, spacing, *args, **kwargs)
    return _MASKS[key]


def background_splits(frame: pd.DataFrame) -> list[tuple[np.ndarray, np.ndarray]]:
    """One (train, test) pair per background patient: see the module docstring."""
    bg = frame["bg_patient_id"].astype(str).to_numpy()
    patients = frame["patient_id"].astype(str).to_numpy()
    out = []
    for held in sorted(set(bg)):
        test = np.nonzero(bg == held)[0]
        train = np.nonzero((bg != held) & ~np.isin(patients, patients[test]))[0]
        print(f"background {held} left out: train {len(train)}, test {len(test)}", flush=True)
        out.append((train, test))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--view", default="full")
    ap.add_argument("--task", action="append", default=None)
    ap.add_argument("--preset", default="default")
    ap.add_argument("--tabular", action="append", default=None)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--preprocess", default=None)
    ap.add_argument("--no-mask-augment", action="store_true", help="the preset without its automatic-mask copies "
                    "(`mask_augment`), as the default preset was before issue 12")
    ap.add_argument("--segmenter", default=None, choices=["classical", "learned"], help="the preset's segmenter "
                    "replaced (a learned one is fitted per fold; the CV's given masks never use it)")
    ap.add_argument("--name", default=None, help="run name prefix (default: VIEW-PRESET)")
    ap.add_argument("--split", default="patient", choices=["patient", "background"])
    args = ap.parse_args()
    lungmask.lung_mask_array = _memo_lung_mask
    ds = SliceDataset(args.data).view(args.view)
    frame = ds.frame
    slices = None
    for task in args.task or ["binary"]:
        for tabular in args.tabular or [None]:
            cfg = load_preset(args.preset, view=args.view, task=task, tabular=tabular, epochs=args.epochs,
                              batch_size=args.batch_size, preprocess=args.preprocess,
                              mask_augment=False if args.no_mask_augment else None, segmenter=args.segmenter)
            if slices is None:
                slices = load_slices(ds, cfg.channels)
            name = f"{args.name or f'{args.view}-{args.preset}'}-{task}" + ("-image" if cfg.tabular == "none" else "")
            y = task_labels(frame, task)
            t0 = time.perf_counter()
            parts, per_fold = [], []
            splits = patient_kfold(frame, task, cfg.folds, cfg.seed) if args.split == "patient" else \
                background_splits(frame)
            if args.split == "background":
                name += "-unseen-background"
            for k, (tr, va) in enumerate(splits):
                with tempfile.TemporaryDirectory() as tmp:
                    _, _, proba = train_fold(cfg, slices, frame, y, tr, k, Path(tmp) / "state.pt",
                                             log=lambda s: None, predict_idx=va)
                part = pd.DataFrame({"sample_id": frame["sample_id"].to_numpy()[va],
                                     "patient_id": frame["patient_id"].astype(str).to_numpy()[va], "fold": k,
                                     "y_true": y[va]})
                for c in range(proba.shape[1]):
                    part[f"proba_{c}"] = proba[:, c]
                parts.append(part)
                m = compute_metrics(y[va], proba, task)
                per_fold.append({key: m[key] for key in ("roc_auc", "accuracy", "qwk") if key in m})
                print(f"{name} fold {k}: {per_fold[-1]} ({time.perf_counter() - t0:.0f} s)", flush=True)
            oof = pd.concat(parts).sort_values("sample_id", kind="stable").reset_index(drop=True)
            folder = args.out / name
            folder.mkdir(parents=True, exist_ok=True)
            oof.to_csv(folder / "oof_predictions.csv", index=False)
            pooled = compute_metrics(oof["y_true"].to_numpy(), oof.filter(like="proba_").to_numpy(), task)
            spread = pd.DataFrame(per_fold).agg(["mean", "std"]).round(3).to_dict()
            print(f"{name}: pooled {({k: round(pooled[k], 3) for k in ('roc_auc', 'accuracy', 'qwk') if k in pooled})}, "
                  f"folds mean/sd {spread}, {time.perf_counter() - t0:.0f} s; cfg epochs={cfg.epochs} "
                  f"batch={cfg.batch_size} preprocess={cfg.preprocess} tabular={cfg.tabular}", flush=True)


if __name__ == "__main__":
    main()
