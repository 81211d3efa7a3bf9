"""GPU check and throughput of the training engine's `--device cuda` path (fine-tuning variant).

    python bench/bench_gpu.py DATASET [--device cuda|cpu] [--epochs 3] [--folds 2] [--out DIR]

Without a CUDA device (and `--device cuda`, the default) it prints "no CUDA device; skipped" and exits 0.
Otherwise:
1. trains the `default` preset switched to fine-tuning (`freeze_backbone=False`, as `--finetune`; the
   preset's logreg head needs a frozen backbone, so the head becomes `mlp`) on the nodule view, binary
   task, `--folds`-fold CV + final model, `--epochs` epochs, through `ctnodule.train.api.train`, and
   prints the wall time, per-epoch time and metrics.json's roc_auc;
2. measures inference of the finished run (`load_run(...).predict_proba`, TTA as the run uses it) on the
   whole dataset, on the same device: end-to-end slices/s (HU slice -> preprocessing -> network) and the
   network alone on prepared images (`proba_from`).
`--device cpu` runs the same code on the CPU (local dry run / CPU comparison).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path, help="slice dataset folder (manifest.csv)")
    ap.add_argument("--device", default="cuda", help="cuda | cuda:N | cpu (default cuda)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--folds", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=None, help="override the preset's batch size")
    ap.add_argument("--repeats", type=int, default=3, help="timed inference passes (best is reported)")
    ap.add_argument("--out", type=Path, default=None, help="run folder (default: a temporary one)")
    args = ap.parse_args(argv)

    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device; skipped")
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="ctnodule-gpu-bench-"))
    os.environ.setdefault("CTNODULE_CACHE", str(tmp / "cache"))  # feature cache somewhere writable

    from ctnodule.data.dataset import SliceDataset
    from ctnodule.predict.run import load_run
    from ctnodule.recipe import load_preset
    from ctnodule.workflow import train_and_report

    dev = args.device
    print(f"python {platform.python_version()}  torch {torch.__version__}  device {dev}", flush=True)
    if dev.startswith("cuda"):
        print(f"GPU: {torch.cuda.get_device_name(torch.device(dev))}  cuDNN {torch.backends.cudnn.version()}")
    else:
        print(f"CPU threads: {torch.get_num_threads()}")

    cfg = load_preset("default", view="nodule", task="binary", folds=args.folds, epochs=args.epochs,
                      device=dev, freeze_backbone=False, head="mlp", batch_size=args.batch_size)
    print("config: " + ", ".join(f"{k}={getattr(cfg, k)}" for k in (
        "backbone", "head", "freeze_backbone", "tabular", "channels", "batch_size", "epochs", "folds", "tta",
        "device")) + f", augment={cfg.augment.mode}", flush=True)
    run_dir = args.out or tmp / "run"

    # 1. training
    if dev.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    train_and_report(args.data, run_dir, cfg, force=True, log=lambda m: print(f"  [train] {m}", flush=True))
    train_s = time.perf_counter() - t0
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    n_epochs = 0
    hist = run_dir / "history.csv"
    if hist.is_file():
        import pandas as pd

        n_epochs = len(pd.read_csv(hist))
    print(f"TRAIN wall time: {train_s:.1f} s total ({args.folds}-fold CV + final model, {n_epochs} epochs "
          f"trained in all; metrics.json train_seconds={metrics.get('train_seconds')})")
    print(f"TRAIN roc_auc (pooled out-of-fold): {metrics.get('roc_auc')}  accuracy: {metrics.get('accuracy')}  "
          f"n={metrics.get('n')}")
    if dev.startswith("cuda"):
        print(f"TRAIN peak GPU memory: {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")

    # 2. inference
    pred = load_run(run_dir)
    pred.device = dev  # Predictor defaults to the CPU; its model is moved to match
    pred.model.to(dev)
    slices = pred.load_slices(SliceDataset(args.data))
    n = len(slices)
    pred.predict_proba(slices[:64])  # warm-up (cuDNN algorithm choice, allocator)

    def sync() -> None:
        if dev.startswith("cuda"):
            torch.cuda.synchronize()

    best_e2e = best_net = float("inf")
    fm = pred._fm
    images, extra = fm.images(slices), fm.extra(slices)
    for _ in range(args.repeats):
        sync()
        t = time.perf_counter()
        proba = pred.predict_proba(slices)
        sync()
        best_e2e = min(best_e2e, time.perf_counter() - t)
        t = time.perf_counter()
        fm.proba_from(images, extra, dev)
        sync()
        best_net = min(best_net, time.perf_counter() - t)
    assert proba.shape == (n, 2), proba.shape
    print(f"INFER end-to-end predict_proba: {n / best_e2e:.1f} slices/s ({n} slices in {best_e2e:.2f} s, "
          f"best of {args.repeats}; tta={cfg.tta})")
    print(f"INFER network only (proba_from on prepared images): {n / best_net:.1f} slices/s "
          f"({best_net:.3f} s)")
    print(f"SUMMARY device={dev} train_s={train_s:.1f} roc_auc={metrics.get('roc_auc')} "
          f"infer_e2e_sps={n / best_e2e:.1f} infer_net_sps={n / best_net:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
