"""Held-out Grad-CAM of a CV run: each fold's checkpoint explains only that fold's validation nodules.

`ctnodule explain RUN` explains the final model, fitted on every nodule, so its localization numbers are
in-sample. This bench explains every nodule with the model that never saw it: for fold k it opens a
temporary run folder whose model is `checkpoints/fold-k.pt` (same config and pipeline), explains the
fold's validation rows (`splits/fold-k.csv`) with `explain_run`, and pools the per-sample records.

Prints per fold and pooled: heat share inside the mask and inside the mask grown by 3 mm
(`mean_cam_in_mask_3mm`, with the flat-map level), the pointing game (3 mm), on full slices whose pipeline
masks the lungs the heat inside them (and their area share), and the CPU seconds.

    PYTHONPATH=src OMP_NUM_THREADS=1 nice -n 10 python bench/bench_oof_gradcam.py RUN DATA --out DIR [--view full]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

from ctnodule.data.dataset import SliceDataset
from ctnodule.data.splits import load_splits
from ctnodule.explain.stage import explain_run
from ctnodule.runfolder import RunPaths

#: full slices whose pipeline masks the lungs add the heat inside them and their area share
KEYS = ("cam_in_mask", "pointing_game", "cam_in_mask_3mm", "area_fraction_3mm", "pointing_game_3mm", "cam_in_lung",
        "lung_area_fraction")


def fold_run(run: Path, fold: int, tmp: Path) -> Path:
    """A run folder that is `run` with fold `fold`'s checkpoint as its model (links, nothing copied)."""
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    for item in run.iterdir():
        if item.name not in ("model.pt", "report.html"):
            os.symlink(item.resolve(), tmp / item.name)
    os.symlink(RunPaths(run).fold_model(fold).resolve(), tmp / RunPaths(run).model.name)
    return tmp


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("data", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--view", default="nodule", choices=["nodule", "full"], help="the run's view")
    args = ap.parse_args()
    c0, t0 = time.process_time(), time.time()
    ds = SliceDataset(args.data).view(args.view)
    frame = ds.frame.reset_index(drop=True)
    splits = load_splits(args.run, frame)
    records = []
    for k, (_, val) in enumerate(splits):
        tmp = fold_run(args.run, k, args.out / f"run-fold-{k}")
        out = args.out / f"fold-{k}"
        explain_run(tmp, ds.subset(np.asarray(val)), out, force=True, faithfulness=0, log=lambda m: None)
        recs = json.loads((out / "localization.json").read_text())["per_sample"]
        records += recs
        print(f"fold {k}: {len(recs)} held-out nodules " + _line(recs), flush=True)
    print(f"pooled out-of-fold: {len(records)} nodules " + _line(records)
          + f" | wall {time.time() - t0:.0f} s, CPU {time.process_time() - c0:.0f} s", flush=True)


def _line(recs: list[dict]) -> str:
    vals = {k: np.array([r.get(k) for r in recs if r.get(k) is not None], float) for k in KEYS}
    return ", ".join(f"{k} {np.nanmean(v):.3f}" for k, v in vals.items() if len(v))


if __name__ == "__main__":
    main()
