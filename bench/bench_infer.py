"""Inference throughput: nodule slices per second, end to end (reading included) and per stage, for
today's torch path (`load_run` -> `Predictor.predict_proba`) and the exported onnxruntime bundle, for the
default and the fast preset, in the same process on the same data; plus bundle size and load time and
the two paths' agreement.

Run: python bench/bench_infer.py DATA RUN [--fast-run RUN] [--out DIR]
     (DATA: a slice dataset, e.g. `ctnodule import voi`; RUN: a default-preset run on it; --fast-run: a
     `--preset fast` run, descriptors only; --out: where the bundles go, reused when already exported
     from the same run). On the 798 LIDC VOIs: 147 s wall at load average 14 on 2 cores; its ~45
     CPU-seconds make about 1 minute on 2 idle cores.

Every figure is given per wall second and per CPU second (user + sys of this process and its worker
processes), with the 1-minute load average when the stage ended: on a shared machine the wall figure
depends on the neighbours, the CPU figure much less. "2-core CPU equiv." = 2 x slices per CPU-second:
what 2 idle cores reach when the work spreads over both (the 2-worker rows show how close they come).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

TORCH_E2E = "END TO END torch run (today's `predict RUN`)"
#: the torch network is timed on this many slices (the whole set runs in the end-to-end row): the 4-view
#: CPU pass costs ~50 ms per slice, and the benchmark should fit in 2 minutes
TORCH_STAGE_N = 200


@dataclass
class Row:
    preset: str
    stage: str
    n: int
    wall: float
    cpu: float
    load: float


ROWS: list[Row] = []


def timed(preset: str, stage: str, n: int, fn: Callable[[], Any]) -> Any:
    """Run `fn`, record wall and CPU seconds (this process + its finished workers) under `stage`."""
    c0, t0 = os.times(), time.perf_counter()
    out = fn()
    wall, c1 = time.perf_counter() - t0, os.times()
    cpu = sum(getattr(c1, k) - getattr(c0, k) for k in ("user", "system", "children_user", "children_system"))
    ROWS.append(Row(preset, stage, n, wall, cpu, os.getloadavg()[0]))
    return out


def stages(run: Path, bundle_dir: Path, data: Path, preset: str) -> None:
    """Each stage of both paths on the same slices, in this one process."""
    from ctnodule.data.dataset import SliceDataset
    from ctnodule.models.descriptors import tabular_features
    from ctnodule.models.features import extract_features
    from ctnodule.models.fitted import sklearn_matrix
    from ctnodule.predict.bundle import apply_head, load_bundle
    from ctnodule.predict.run import load_run
    from ctnodule.preprocess.inputs import to_images

    fm = load_run(run).fold_model
    bundle = load_bundle(bundle_dir)
    ds = SliceDataset(data, validate=False).view(bundle.view)
    n = len(ds)
    slices = timed(preset, f"read ({bundle.reads}: what the bundle reads)", n, lambda: bundle.load_slices(ds))
    raw = timed(preset, "descriptors", n, lambda: tabular_features(slices, fm.cfg.tabular))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        extra = fm.scaler.transform(raw)
    if fm.net.backbone.num_features:
        images = timed(preset, "preprocess (pipeline)", n,
                       lambda: to_images(list(fm.pipeline.transform_many(slices, workers=1))))
        views = "4 flip views" if fm.cfg.tta else "1 view"
        k = min(TORCH_STAGE_N, n)
        timed(preset, f"network torch ({fm.cfg.backbone}, {views}, channels-last; {k} slices)", k,
              lambda: extract_features(images[:k], fm.net.backbone, pooled=True, tta=fm.cfg.tta, use_cache=False))
        feats = timed(preset, f"network onnxruntime ({views})", n, lambda: bundle.features(images))
        timed(preset, "head scikit-learn (torch path)", n,
              lambda: fm.sk_head.predict_proba(sklearn_matrix(feats[None], extra), bundle.head["n_classes"]))
    else:
        feats = None
    timed(preset, "head numpy (bundle)", n, lambda: apply_head(bundle.head, feats, raw))


def end_to_end(data: Path, run: Path, bundle_dir: Path, preset: str) -> float:
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

    n = len(SliceDataset(data, validate=False).view(load_bundle(bundle_dir).view))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        expected = timed(preset, TORCH_E2E, n, torch_path)
        got = [timed(preset, f"END TO END bundle, {w} worker process{'es' if w > 1 else ''}", n,
                     lambda w=w: bundle_path(w)) for w in (1, 2)]
    return max(float(np.abs(g - expected).max()) for g in got)


def bundle_for(run: Path, out: Path, preset: str) -> Path:
    """The run's bundle under `out`: reused if exported from this very run (same model.pt), else exported."""
    from ctnodule.export.bundle import export_bundle
    from ctnodule.predict.bundle import load_bundle

    folder, stamp = out / preset, (run / "model.pt").stat()
    marker = out / f"{preset}.source.json"
    source = {"run": str(run.resolve()), "model_mtime": stamp.st_mtime, "model_size": stamp.st_size}
    reused = folder.is_dir() and marker.is_file() and json.loads(marker.read_text()) == source
    t0 = time.perf_counter()
    if not reused:
        export_bundle(run, folder, force=True)
        marker.write_text(json.dumps(source))
    export_s = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    loads = [load_bundle(folder).load_seconds for _ in range(3)]
    print(f"{preset} bundle: {'reused' if reused else f'exported in {export_s:.1f} s wall'}, {size / 1e6:.2f} MB, "
          f"load {loads[0]:.3f} s first, {min(loads):.3f} s best of 3")
    return folder


def print_table(diffs: dict[str, float]) -> None:
    head = (f"{'preset':7s} {'stage':64s} {'n':>4s} {'wall s':>6s} {'CPU s':>6s} {'/s wall':>7s} {'/CPU-s':>7s} "
            f"{'2-core':>7s} {'load':>5s} {'vs torch':>9s}")
    print(f"\n{head}\n{'':7s} {'':64s} {'':>4s} {'':>6s} {'':>6s} {'':>7s} {'':>7s} {'CPU eq.':>7s} {'1 min':>5s} "
          f"{'(CPU-s)':>9s}\n{'-' * len(head)}")
    for r in ROWS:
        timed_cpu = r.cpu >= 0.02  # os.times ticks are 10 ms
        per_cpu = r.n / max(r.cpu, 0.01)
        torch_row = next((t for t in ROWS if t.preset == r.preset and t.stage == TORCH_E2E), None)
        ratio = ""
        if r.stage.startswith("END TO END bundle") and torch_row:
            ratio = f"{per_cpu / (torch_row.n / torch_row.cpu):8.1f}x"
        elif r.stage.startswith("network onnxruntime"):
            t = next(t for t in ROWS if t.preset == r.preset and t.stage.startswith("network torch"))
            ratio = f"{per_cpu / (t.n / t.cpu):8.1f}x"
        cpu_rate = f"{per_cpu:7.0f} {2 * per_cpu:7.0f}" if timed_cpu else f"{'<10 ms':>7s} {'':>7s}"
        print(f"{r.preset:7s} {r.stage:64s} {r.n:4d} {r.wall:6.2f} {r.cpu:6.2f} {r.n / r.wall:7.0f} {cpu_rate} "
              f"{r.load:5.1f} {ratio:>9s}")
    print()
    for preset, diff in diffs.items():
        rows = [r for r in ROWS if r.preset == preset]
        torch_row = next(r for r in rows if r.stage == TORCH_E2E)
        best = max((r for r in rows if r.stage.startswith("END TO END bundle")), key=lambda r: r.n / r.wall)
        print(f"{preset}: best end to end {best.n / best.wall:.0f} slices/s wall ({best.stage[11:]}, load "
              f"{best.load:.1f}), {best.n / best.cpu:.0f}/CPU-s = {2 * best.n / best.cpu:.0f}/s on 2 idle cores; "
              f"torch path {torch_row.n / torch_row.wall:.0f}/s wall, {torch_row.n / torch_row.cpu:.0f}/CPU-s; "
              f"speed-up {torch_row.wall / best.wall:.1f}x wall, {torch_row.cpu / best.cpu * best.n / torch_row.n:.1f}x "
              f"CPU; largest |p_bundle - p_torch| = {diff:.1e}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("run", type=Path)
    ap.add_argument("--fast-run", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=None, help="Where the bundles go (default: a temp folder).")
    args = ap.parse_args()
    if not (args.data / "manifest.csv").is_file() or not (args.run / "model.pt").is_file():
        print(f"skip: need a slice dataset ({args.data}) and a trained run ({args.run})")
        return
    import torch

    from ctnodule.preprocess.parallel import usable_cores

    out = args.out or Path(tempfile.mkdtemp(prefix="bench-infer-"))
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    print(f"{usable_cores()} usable cores, torch threads {torch.get_num_threads()}, load average at start "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} (1/5/15 min; above ~0.5 the machine is shared: "
          "trust CPU seconds over wall seconds)")
    diffs = {}
    for preset, run in [("default", args.run)] + ([("fast", args.fast_run)] if args.fast_run else []):
        bundle_dir = bundle_for(run, out, preset)
        stages(run, bundle_dir, args.data, preset)
        diffs[preset] = end_to_end(args.data, run, bundle_dir, preset)
    print_table(diffs)
    print(f"\nbenchmark took {time.perf_counter() - t0:.0f} s wall; load average at the end "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
