"""Inference throughput: nodule slices per second, end to end (reading included) and per stage, for
today's torch path (`load_run` -> `Predictor.predict_proba`) and the exported onnxruntime bundle, in the
same process on the same data; plus the bundle's size and load time and the two paths' agreement.

Run: python bench/bench_infer.py DATA RUN [--fast-run RUN] [--out DIR]
     (DATA: a slice dataset, e.g. `ctnodule import voi`; RUN: a default-preset run on it; --fast-run: a
     `--preset fast` run, descriptors only)

Every figure is given per wall second and per CPU second (user + sys of this process and its workers):
on a shared machine the wall figure depends on the neighbours, the CPU figure much less. "2-core
bound" = 2 x slices per CPU-second, what 2 idle cores reach when the work spreads over both.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROWS: list[tuple[str, int, float, float]] = []


def timed(name: str, n: int, fn: Callable[[], Any]) -> Any:
    """Run `fn`, record wall and CPU seconds (this process + finished children) under `name`."""
    c0, t0 = os.times(), time.perf_counter()
    out = fn()
    wall, c1 = time.perf_counter() - t0, os.times()
    cpu = sum(getattr(c1, k) - getattr(c0, k) for k in ("user", "system", "children_user", "children_system"))
    ROWS.append((name, n, wall, cpu))
    return out


def stages(run: Path, bundle_dir: Path, slices: list, tag: str) -> None:
    """Each stage of both paths on the same slices (one process, no workers)."""
    from ctnodule.models.descriptors import tabular_features
    from ctnodule.models.features import extract_features
    from ctnodule.models.fitted import sklearn_matrix
    from ctnodule.predict.bundle import apply_head, load_bundle
    from ctnodule.predict.run import load_run
    from ctnodule.preprocess.inputs import to_images

    n = len(slices)
    fm = load_run(run).fold_model
    bundle = load_bundle(bundle_dir)
    images = timed(f"{tag} preprocess (pipeline, 1 process{'' if fm.net.backbone.num_features else '; unused'})", n,
                   lambda: to_images(list(fm.pipeline.transform_many(slices, workers=1))))
    raw = timed(f"{tag} descriptors (1 process)", n, lambda: tabular_features(slices, fm.cfg.tabular))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        extra = fm.scaler.transform(raw)
    if fm.net.backbone.num_features:
        feats = timed(f"{tag} network torch ({fm.cfg.backbone}, {'4 flip views' if fm.cfg.tta else '1 view'}, "
                      "channels-last)", n,
                      lambda: extract_features(images, fm.net.backbone, pooled=True, tta=fm.cfg.tta, use_cache=False))
        image_feats = timed(f"{tag} network onnxruntime", n, lambda: bundle.features(images))
    else:
        feats, image_feats = np.zeros((1, n, 0), np.float16), None
    timed(f"{tag} head scikit-learn", n, lambda: fm.sk_head.predict_proba(sklearn_matrix(feats, extra), 2 if
                                                                          fm.cfg.task == "binary" else 5))
    timed(f"{tag} head numpy (bundle)", n, lambda: apply_head(bundle.head, image_feats, raw))


def end_to_end(data: Path, run: Path, bundle_dir: Path, tag: str) -> float:
    """Load + read + predict the whole dataset: torch run vs bundle (1 and 2 worker processes).
    Returns the largest |p_bundle - p_torch|."""
    from ctnodule.data.dataset import SliceDataset
    from ctnodule.predict.bundle import load_bundle
    from ctnodule.predict.run import load_run

    def torch_path() -> np.ndarray:  # what `ctnodule predict RUN DATA` does (validating the dataset first)
        p = load_run(run)
        return p.predict_proba(p.load_slices(SliceDataset(data)))

    def bundle_path(workers: int) -> np.ndarray:  # `ctnodule predict BUNDLE DATA` (workers check what they read)
        return load_bundle(bundle_dir).predict_dataset(SliceDataset(data, validate=False), workers=workers)

    n = len(SliceDataset(data, validate=False).view("nodule"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        expected = timed(f"{tag} END TO END torch run (today's predict)", n, torch_path)
        got = [timed(f"{tag} END TO END bundle, {w} worker process(es)", n,
                     lambda w=w: bundle_path(w)) for w in (1, 2)]
    return max(float(np.abs(g - expected).max()) for g in got)


def report_bundle(run: Path, out: Path, tag: str) -> Path:
    from ctnodule.export.bundle import export_bundle
    from ctnodule.predict.bundle import load_bundle

    t0 = time.perf_counter()
    bundle_dir = export_bundle(run, out / tag, force=True)
    export_s = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in bundle_dir.rglob("*") if p.is_file())
    loads = [load_bundle(bundle_dir).load_seconds for _ in range(3)]
    print(f"{tag} bundle: exported in {export_s:.1f} s wall, {size / 1e6:.2f} MB, load {loads[0]:.3f} s first, "
          f"{min(loads):.3f} s best of 3")
    return bundle_dir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("run", type=Path)
    ap.add_argument("--fast-run", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=None, help="Where to write the bundles (default: a temp folder).")
    args = ap.parse_args()
    if not (args.data / "manifest.csv").is_file() or not (args.run / "model.pt").is_file():
        print(f"skip: need a slice dataset ({args.data}) and a trained run ({args.run})")
        return
    import torch

    from ctnodule.data.dataset import SliceDataset
    from ctnodule.preprocess.inputs import load_slices
    from ctnodule.preprocess.parallel import usable_cores

    out = args.out or Path(tempfile.mkdtemp(prefix="bench-infer-"))
    print(f"{usable_cores()} usable cores, torch threads {torch.get_num_threads()}, load average "
          f"{os.getloadavg()[0]:.1f} (shared machine: trust CPU seconds over wall seconds)")
    runs = [("default", args.run)] + ([("fast", args.fast_run)] if args.fast_run else [])
    diffs = {}
    for tag, run in runs:
        bundle_dir = report_bundle(run, out, tag)
        ds = SliceDataset(args.data).view("nodule")
        slices = timed(f"{tag} read (dataset -> slices, 1 process)", len(ds), lambda ds=ds: load_slices(ds, "context"))
        stages(run, bundle_dir, slices, tag)
        diffs[tag] = end_to_end(args.data, run, bundle_dir, tag)
    print(f"\n{'stage':68s} {'n':>5s} {'wall s':>7s} {'CPU s':>7s} {'/s wall':>8s} {'/CPU-s':>7s} {'2-core bound':>12s}")
    for name, n, wall, cpu in ROWS:
        rate = f"{n / cpu:7.0f} {2 * n / cpu:12.0f}" if cpu > 0.05 else f"{'>' + str(round(n / 0.05)):>7s} {'':12s}"
        print(f"{name:68s} {n:5d} {wall:7.2f} {cpu:7.2f} {n / wall:8.0f} {rate}")
    for tag, diff in diffs.items():
        rows = {name: cpu for name, _, _, cpu in ROWS if name.startswith(tag)}
        torch_cpu = rows[f"{tag} END TO END torch run (today's predict)"]
        best = min(cpu for name, cpu in rows.items() if "END TO END bundle" in name)
        print(f"{tag}: bundle vs torch end to end, per CPU-second: {torch_cpu / best:.1f}x; "
              f"largest |p_bundle - p_torch| = {diff:.1e}")


if __name__ == "__main__":
    main()
