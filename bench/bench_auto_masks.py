"""Out-of-fold AUC of a trained run when its held-out VOIs get automatic masks instead of the given ones.

No retraining: each fold's checkpoint (`RUN/checkpoints/fold-K.pt`) predicts its held-out patients
(`RUN/splits/fold-K.csv`, split == val) three ways: with the given consensus masks (as in training;
this reproduces the run's OOF AUC), with automatic masks seeded at the given mask's centroid, and
seeded up to 3 mm off it (seeded RNG). With automatic masks the sample is cut from the VOI the way `predict`
cuts it from a CT (`predict.volume.judged_sample`: the slice with the largest mask area, its neighbours, and
for a nodule-view run the crop around the automatic mask like the VOI export's around the consensus one).
Until 2026-11-29 this bench kept the whole VOI in-plane (`view="full"`) for every run: for the nodule-view
default that is not what a user gets (the crop then follows the consensus mask while the descriptors follow
the automatic one) and it understated the automatic-mask AUC by about 0.015. Pooled OOF AUC per way (and QWK
for a 5-class run).

A run trained with `segmenter: learned` is judged both ways on the same seed points: `classical` (the
fold's checkpoint with its learned segmenter set aside), `learned` (the outline of the fold's own segmenter,
fitted on that fold's training patients only) and `both` (the mean of the two ways' probabilities: what
`predict` reports, `predict.volume.judge_outlines`). Then a paired patient bootstrap of
each automatic way against the given masks, and of learned against classical.

Run: python bench/bench_auto_masks.py RUN [RUN ...] [--voi path/to/lidc-voi] [--data path/to/imported/voi]
"""

from __future__ import annotations

import argparse
import dataclasses
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ctnodule.data.dataset import SliceDataset
from ctnodule.errors import DataError
from ctnodule.evaluate.bootstrap import resample_counts, weighted_metrics
from ctnodule.evaluate.metrics import compute_metrics
from ctnodule.models.fitted import FittedModel
from ctnodule.predict.run import Predictor
from ctnodule.predict.volume import judged_sample, outlines_at
from ctnodule.preprocess.inputs import load_slices
from ctnodule.runfolder import RunPaths
from ctnodule.vocab import task_labels

SHARED = Path(__file__).resolve().parents[2] / "shared/data"
MOVE_MM = 3.0
BOOT = 1000


def seeds(frame: pd.DataFrame, voi: Path, seeded: str, rng: np.random.Generator) -> list[tuple]:
    """Each row's VOI (HU, spacing) and seed point: the given mask's centroid, or moved up to MOVE_MM."""
    import nibabel as nib

    out = []
    for _, row in frame.iterrows():
        name = f"{row['patient_id']}_R_{row['nodule_id']}.nii.gz"
        img = nib.load(voi / "image" / name)
        hu = np.transpose(np.asarray(img.dataobj), (2, 1, 0))
        truth = np.transpose(np.asarray(nib.load(voi / "nodule_mask" / name).dataobj) > 0, (2, 1, 0))
        sp = np.asarray(img.header.get_zooms()[:3], float)[::-1]
        seed = np.argwhere(truth).mean(axis=0)
        if seeded == "moved":
            v = rng.standard_normal(3)
            seed = seed + v / np.linalg.norm(v) * MOVE_MM * rng.uniform() ** (1 / 3) / sp
        out.append((hu, sp, seed))
    return out


def auto_slices(predictor: Predictor, frame: pd.DataFrame, points: list[tuple], given: list, label: str) -> list:
    """Each row's sample rebuilt from its VOI with an automatic mask (`outlines_at`'s first: the learned
    segmenter's outline when `predictor` has one, else the classical one); the given sample where refused."""
    out, refused = [], 0
    for (_, row), (hu, sp, seed), fallback in zip(frame.iterrows(), points, given):
        try:
            found = outlines_at(predictor, hu, sp, seed)[0]
        except DataError:
            refused += 1
            out.append(fallback)
            continue
        out.append(judged_sample(predictor, hu, sp, found.mask, row["sample_id"], found.slice_index))
    if refused:
        print(f"  ({label}: {refused} point(s) refused by the segmenter; their given-mask sample is used)")
    return out


def bench_run(run: Path, data: Path, voi: Path) -> None:
    paths = RunPaths(run)
    config = yaml.safe_load(paths.config.read_text(encoding="utf-8"))
    ds = SliceDataset(data).view(config["view"])
    rng = np.random.default_rng(0)
    y_all, patients, proba = [], [], {}
    started, cpu = time.perf_counter(), time.process_time()
    for fold in range(int(config["n_splits"])):
        split = pd.read_csv(paths.split_file(fold), dtype={"sample_id": str})
        held = set(split.loc[split["split"] == "val", "sample_id"])
        part = ds.subset(np.flatnonzero(ds.frame["sample_id"].isin(held).to_numpy()))
        fm, _ = FittedModel.load(paths.fold_model(fold))
        predictor = Predictor(run, fm, config, {})
        classical = Predictor(run, dataclasses.replace(fm, segmenter=None), config, {})
        given = load_slices(part, fm.cfg.channels)
        y_all.append(task_labels(part.frame, fm.cfg.task))
        patients.append(part.frame["patient_id"].astype(str).to_numpy())
        proba.setdefault("given", []).append(predictor.predict_proba(given))
        for seeded in ("centre", "moved"):
            points = seeds(part.frame, voi, seeded, rng)
            ways = [("classical", classical)] + ([("learned", predictor)] if fm.segmenter is not None else [])
            for name, p in ways:
                way = f"{name} ({seeded})"
                proba.setdefault(way, []).append(p.predict_proba(auto_slices(p, part.frame, points, given, way)))
            if fm.segmenter is not None:  # what predict reports: the mean over both outlines
                proba.setdefault(f"both ({seeded})", []).append(
                    (proba[f"classical ({seeded})"][-1] + proba[f"learned ({seeded})"][-1]) / 2)
    y, groups = np.concatenate(y_all), np.concatenate(patients)
    print(f"{run.name} ({config['task']}, {config['backbone']}/{config['head']}, tabular {config['tabular']}, "
          f"segmenter {config.get('segmenter', 'classical')}): {len(y)} held-out VOIs, "
          f"{time.perf_counter() - started:.0f} s wall, {time.process_time() - cpu:.0f} s CPU")
    proba = {way: np.concatenate(p) for way, p in proba.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = {way: compute_metrics(y, p, config["task"]) for way, p in proba.items()}
    recorded = yaml.safe_load(paths.metrics.read_text()).get("roc_auc") if paths.metrics.is_file() else None
    print(f"  pooled OOF AUC recorded by the run: {recorded:.4f}" if recorded is not None else "")
    for way, m in scores.items():
        line = f"  {way:18s} AUC {m['roc_auc']:.4f}"
        if way != "given":
            line += f" (delta {m['roc_auc'] - scores['given']['roc_auc']:+.4f})"
        if "qwk" in m:  # 5-class: the ordinal agreement too
            line += f"  QWK {m['qwk']:.4f}"
            if way != "given":
                line += f" (delta {m['qwk'] - scores['given']['qwk']:+.4f})"
        print(line)
    paired(y, groups, proba, config["task"], scores)


def paired(y: np.ndarray, groups: np.ndarray, proba: dict[str, np.ndarray], task: str, scores: dict) -> None:
    """Paired patient bootstrap (1000 resamples, seed 0) of each automatic way against the given masks, and
    of the learned segmenter against the classical one: the same resampled patients for both sides."""
    counts = resample_counts(len(y), BOOT, 0, groups)
    keys = ["roc_auc"] + (["qwk"] if task == "multiclass" else [])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        boot = {way: weighted_metrics(y, p, task, counts) for way, p in proba.items()}
    pairs = [(way, "given") for way in proba if way != "given"]
    pairs += [(f"{w} ({s})", f"classical ({s})") for w in ("learned", "both") for s in ("centre", "moved")
              if f"{w} ({s})" in proba]
    print(f"  paired patient bootstrap ({BOOT}, {len(np.unique(groups))} patients): difference [2.5%, 97.5%]")
    for a, b in pairs:
        parts = []
        for key in keys:
            d = boot[a][key] - boot[b][key]
            lo, hi = np.nanpercentile(d, [2.5, 97.5])
            parts.append(f"{key} {scores[a][key] - scores[b][key]:+.4f} [{lo:+.4f}, {hi:+.4f}]")
        print(f"    {a:18s} - {b:18s} " + "  ".join(parts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--voi", type=Path, default=SHARED / "lidc-voi")
    parser.add_argument("--data", type=Path, help="the imported VOI dataset the runs were trained on "
                                                  "(default: each run's config `data`)")
    args = parser.parse_args()
    if not args.voi.is_dir():
        print(f"skip: {args.voi} not found")
        return
    for run in args.runs:
        config = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
        bench_run(run, args.data or Path(config["data"]), args.voi)


if __name__ == "__main__":
    main()
