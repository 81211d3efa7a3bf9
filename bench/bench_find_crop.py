"""Find-then-classify on full slices (issue 13): detection, CV accuracy beside the nodule view, localisation.

On a slice dataset with full views and nodule masks (the composite set, the phantom, the LIDC import), it
prints:
1. detection per candidate ranking (`--rank`: `blob`, the blob order; `learned`, a ranker fitted on each
   fold's training slices, so every slice is found by a ranker that never saw it): how often the finder's
   point (`preprocess.find`) lies in the true nodule mask, within 3/5/10 mm of it, by true diameter band,
   and how often nothing is found; CPU seconds per slice (the learned ranking's: its survey of every
   candidate) -> `detection_RANK.csv`;
2. patient-grouped 5-fold CV (seed 0, `patient_kfold` stratified on the binary label; the same folds for
   `--tasks multiclass`): binary AUC / 5-class QWK as mean +- sd over folds (pooled OOF in brackets) of the
   `find-crop` preset trained on found crops (`find: found`) and on true crops (`find: truth`); both always
   predict from FOUND crops, with the learned ranking once per `--top` (find_top: the ranker's favourite
   alone, and its soft decision over the k best), with the AUC apart where the favourite is in the nodule
   and where it is not. A miss is scored with the training prevalence. With `--nodules DIR` (a
   nodule-view dataset holding the same nodules, matched by `--match COLUMN` of the full view against its
   `sample_id`), the default nodule-view recipe on the same nodules and folds. Each CV's out-of-fold
   predictions go to `runs/NAME/oof_predictions.csv` (for `compare_views.py`);
3. Grad-CAM localisation of find-then-classify on held-out slices, in the full slice's frame: the fold
   model's map of the crop placed back where the crop was cut (zero elsewhere), scored against the TRUE mask
   (`explain.localization`): heat in nodule (+3 mm), pointing game (+3 mm), heat in the lungs; "lung-masked"
   = the same map multiplied by the slice's lung mask first.

    PYTHONPATH=src OMP_NUM_THREADS=1 nice -n 10 python bench/bench_find_crop.py DATA --out /tmp/fc [--nodules VOI]
        [--rank blob learned] [--tasks binary multiclass] [--modes found truth] [--top 1 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from sklearn.metrics import roc_auc_score

from ctnodule.data.dataset import SliceDataset
from ctnodule.data.slice import Slice
from ctnodule.data.splits import patient_kfold
from ctnodule.explain.core import GROW_MM, explain_batch, to_input_frame
from ctnodule.explain.gradcam import CamExplainer
from ctnodule.explain.localization import area_fraction, cam_mass_in_mask, grow_mask, pointing_game
from ctnodule.predict.run import Predictor
from ctnodule.preprocess.find import RUNNERS_UP_KEY, NoduleFinder, sample_at, truth_sample
from ctnodule.preprocess.inputs import load_slice
from ctnodule.preprocess.lungmask import lung_mask_array
from ctnodule.preprocess.rank import CandidateRanker
from ctnodule.recipe import load_preset
from ctnodule.train.find_crop import FindInputs, find_inputs, train_found_fold
from ctnodule.train.fold import train_fold
from ctnodule.vocab import N_CLASSES, task_labels


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def detection(slices, found) -> pd.DataFrame:
    """Per slice: is the found point in the true nodule (and is any of a soft find's candidates), how far."""
    rows = []
    for s, f in zip(slices, found):
        m = np.asarray(s.mask).astype(bool)
        if isinstance(f, str):
            rows.append({"found": False, "in_nodule": False, "in_candidates": False, "dist_mm": np.inf,
                         "true_diameter_mm": s.meta.get("mask_diameter_mm")})
            continue
        r, c = f.meta["found_r"], f.meta["found_c"]
        d = float(ndi.distance_transform_edt(~m, sampling=s.spacing)[r, c]) if m.any() else np.inf
        group = [f, *f.meta.get(RUNNERS_UP_KEY, [])]
        rows.append({"found": True, "in_nodule": bool(m[r, c]),
                     "in_candidates": any(m[g.meta["found_r"], g.meta["found_c"]] for g in group),
                     "n_candidates": len(group), "dist_mm": d, "found_r": r, "found_c": c,
                     "found_rank": f.meta["found_rank"],
                     "found_diameter_mm": f.meta["mask_diameter_mm"],
                     "true_diameter_mm": s.meta.get("mask_diameter_mm")})
    return pd.DataFrame(rows)


def blob_from_survey(inputs: FindInputs) -> FindInputs:
    """The blob order's finds taken from a learned ranking's survey: the first of the `max_tries` strongest
    candidates that segments as a nodule, exactly what `find_nodule` without a ranker returns (it segments
    the same candidates in the same order), without searching every slice a second time."""
    found: list = []
    for s, probes in zip(inputs.slices, inputs.probes):
        ok = [] if isinstance(probes, str) else [p for p in probes if p.mask is not None
                                                  and p.rank < inputs.finder.max_tries]
        found.append(sample_at(s, ok[0]) if ok else (probes if isinstance(probes, str) else "no candidate segments"))
    return FindInputs(found, inputs.truth, NoduleFinder(), inputs.slices)


def real_check(path: Path, inputs: FindInputs, frame: pd.DataFrame) -> dict:
    """Detection on another dataset's full slices (the real LIDC ones) by the blob order and by a learned
    ranker: does what the ranker learned here carry over? Each real patient's slices are searched by a ranker
    fitted on this dataset's slices that share neither nodule patient nor background patient with it
    (`patient_id`, `bg_patient_id`): a composite set's backgrounds are those very real slices, and on them the
    real nodule is labelled "not the nodule" (only the pasted one is), so a ranker fitted on all composites is
    taught to pass over the nodules it is tested on (7 of 20 found that way, against 11 here)."""
    ds = SliceDataset(path).view("full")
    real = [load_slice(ds, i, "context") for i in range(len(ds))]
    patients = ds.frame.patient_id.astype(str).to_numpy()
    own = frame[[c for c in ("patient_id", "bg_patient_id") if c in frame]].astype(str).to_numpy()
    found: dict[int, Slice | str] = {}
    for patient in sorted(set(patients)):
        keep = [i for i, p in enumerate(inputs.probes) if not isinstance(p, str) and patient not in own[i]]
        ranker = CandidateRanker().fit([inputs.probes[i] for i in keep], [inputs.slices[i].mask for i in keep])
        held = np.nonzero(patients == patient)[0]
        for i, f in zip(held, NoduleFinder(ranker=ranker).try_each([real[i] for i in held])):
            found[i] = f
    row = {"n": len(real)}
    for name, finds in (("blob", NoduleFinder().try_each(real)), ("learned", [found[i] for i in range(len(real))])):
        det = detection(real, finds)
        row[f"{name}_in_nodule"] = int(det.in_nodule.sum())
        row[f"{name}_within_10mm"] = int((det.dist_mm <= 10).sum())
    print(f"real full slices ({path}, n={len(real)}; rankers fitted per real patient on the slices here without "
          f"it): in nodule blob {row['blob_in_nodule']}, learned {row['learned_in_nodule']}; within 10 mm blob "
          f"{row['blob_within_10mm']}, learned {row['learned_within_10mm']}")
    return row


def auc_summary(y: np.ndarray, proba: np.ndarray, splits) -> dict:
    folds = [roc_auc_score(y[va], proba[va, 1]) for _, va in splits if len(np.unique(y[va])) == 2]
    return {"auc_mean": float(np.mean(folds)), "auc_sd": float(np.std(folds, ddof=1)),
            "auc_pooled": float(roc_auc_score(y, proba[:, 1])), "auc_folds": [round(a, 4) for a in folds]}


def localise(model, slices, found, idx, lungs) -> list[dict]:
    """Full-frame scores of the fold model's Grad-CAM, placed back at the found crop."""
    predictor = Predictor(Path("."), model, {}, model.info)
    keep = [i for i in idx if not isinstance(found[i], str)]
    out = []
    with CamExplainer(predictor.model, "gradcam", None) as cam:
        for start in range(0, len(keep), 16):
            chunk = keep[start:start + 16]
            crops = [found[i] for i in chunk]
            for i, crop, e in zip(chunk, crops, explain_batch(predictor, crops, cam)):
                s = slices[i]
                full = np.zeros(s.array.shape[-2:], np.float32)
                local = to_input_frame(e.cam, e.affine, crop.array.shape[-2:])
                r0, c0 = crop.meta["found_crop_r0"], crop.meta["found_crop_c0"]
                full[r0:r0 + local.shape[0], c0:c0 + local.shape[1]] = local
                out.append(score_full(full, s, lungs[i]))
    return out


def score_full(cam: np.ndarray, s, lung: np.ndarray) -> dict:
    mask = np.asarray(s.mask).astype(bool)
    grown = grow_mask(mask, GROW_MM, s.spacing)
    row = {}
    for name, m in (("raw", cam), ("lung_masked", cam * lung)):
        if m.max() <= 0:
            row.update({f"{name}_{k}": 0.0 for k in ("in_nodule", "in_nodule_3mm", "pointing", "pointing_3mm")})
            row[f"{name}_in_lung"] = 0.0
            continue
        row.update({f"{name}_in_nodule": cam_mass_in_mask(m, mask), f"{name}_in_nodule_3mm": cam_mass_in_mask(m, grown),
                    f"{name}_pointing": float(pointing_game(m, mask)),
                    f"{name}_pointing_3mm": float(pointing_game(m, grown)),
                    f"{name}_in_lung": cam_mass_in_mask(m, lung) if lung.any() else np.nan})
    row["nodule_area"] = area_fraction(mask)
    row["lung_area"] = area_fraction(lung)
    return row


SIZE_BANDS = ((0, 6), (6, 10), (10, 20), (20, np.inf))


def print_detection(name: str, det: pd.DataFrame, cpu_per_slice: float) -> dict:
    """Detection rates overall and by true diameter band (mm)."""
    row = {"found": det.found.mean(), "in_nodule": det.in_nodule.mean(), "in_candidates": det.in_candidates.mean(),
           "within_3mm": (det.dist_mm <= 3).mean(),
           "within_5mm": (det.dist_mm <= 5).mean(), "within_10mm": (det.dist_mm <= 10).mean(),
           "cpu_s_per_slice": cpu_per_slice}
    bands = []
    for lo, hi in SIZE_BANDS:
        sel = det.true_diameter_mm.between(lo, hi, inclusive="left")
        row[f"in_nodule_{lo}-{hi}mm"] = det.in_nodule[sel].mean()
        bands.append(f"{lo}-{hi} mm {det.in_nodule[sel].mean():.3f} (n={int(sel.sum())})")
    print(f"detection ({name}): found {row['found']:.3f}, in nodule {row['in_nodule']:.3f} (any of a soft find's "
          f"candidates {row['in_candidates']:.3f}), within 3 mm "
          f"{row['within_3mm']:.3f}, 5 mm {row['within_5mm']:.3f}, 10 mm {row['within_10mm']:.3f} (n={len(det)}); "
          f"by true diameter: {'; '.join(bands)}; {cpu_per_slice:.3f} CPU-s per slice")
    return row


def write_oof(path: Path, frame: pd.DataFrame, sample_ids, y: np.ndarray, proba: np.ndarray, splits) -> None:
    """`oof_predictions.csv` like a run folder's (what `compare_views.py` reads)."""
    fold = np.zeros(len(y), int)
    for k, (_, va) in enumerate(splits):
        fold[va] = k
    table = pd.DataFrame({"sample_id": list(sample_ids), "patient_id": frame.patient_id.to_numpy(), "fold": fold,
                          "y_true": y})
    for c in range(proba.shape[1]):
        table[f"proba_{c}"] = proba[:, c]
    path.mkdir(parents=True, exist_ok=True)
    table.to_csv(path / "oof_predictions.csv", index=False)


def cv_summary(task: str, y: np.ndarray, proba: np.ndarray, splits) -> tuple[dict, str]:
    if task == "binary":
        summ = auc_summary(y, proba, splits)
        return summ, f"AUC {summ['auc_mean']:.3f} +- {summ['auc_sd']:.3f} (pooled {summ['auc_pooled']:.3f})"
    from ctnodule.evaluate.metrics import compute_metrics

    folds = [compute_metrics(y[va], proba[va], task)["qwk"] for _, va in splits]
    summ = {"qwk_mean": float(np.mean(folds)), "qwk_sd": float(np.std(folds, ddof=1)),
            "qwk_pooled": float(compute_metrics(y, proba, task)["qwk"])}
    return summ, f"QWK {summ['qwk_mean']:.3f} +- {summ['qwk_sd']:.3f} (pooled {summ['qwk_pooled']:.3f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--nodules", type=Path, help="nodule-view dataset with the same nodules")
    ap.add_argument("--match", default=None, help="full-view column holding the nodule dataset's sample_id")
    ap.add_argument("--modes", nargs="+", default=["found", "truth"])
    ap.add_argument("--rank", nargs="+", default=["blob", "learned"], choices=["blob", "learned"],
                    help="candidate ranking(s) of the finder (find_rank); learned: fitted per fold")
    ap.add_argument("--real", type=Path, help="a dataset of real full slices (the LIDC import): detection there by "
                    "a ranker fitted on all of DATA")
    ap.add_argument("--tasks", nargs="+", default=["binary"], choices=["binary", "multiclass"])
    ap.add_argument("--top", nargs="+", type=int, default=None, help="with the learned ranking: how many of its "
                    "favourites the nodule model judges (find_top; 1 = the favourite only); default: 1 and the "
                    "preset's")
    ap.add_argument("--inner", default="find-crop", help="preset of the nodule model inside (find-crop: the "
                    "default nodule recipe; nodule-cnn: the nodule-scale CNN, whose Grad-CAM can point)")
    ap.add_argument("--n-loc", type=int, default=1000, help="held-out slices explained (at most)")
    ap.add_argument("--limit", type=int, default=0, help="first N full slices only (smoke test)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    tops = sorted(set(args.top or [1, load_preset(args.inner, view="full").find_top]))
    t0, c0 = time.perf_counter(), cpu()

    ds = SliceDataset(args.data).view("full")
    frame = ds.frame.reset_index(drop=True)
    if args.limit:
        frame = frame.iloc[:args.limit].reset_index(drop=True)
    slices = [load_slice(ds, i, "context") for i in range(len(frame))]
    print(f"{len(slices)} full slices, {frame['patient_id'].nunique()} patients, "
          f"{int(task_labels(frame, 'binary').sum())} malignant")
    n = len(slices)
    splits = patient_kfold(frame, "binary", 5, 0)
    for tr, va in splits:
        assert not set(frame.patient_id.iloc[tr]) & set(frame.patient_id.iloc[va])
    results: dict = {"n": n}
    lungs: dict = {}
    tmp = Path(tempfile.mkdtemp(prefix="fc-", dir=args.out))
    truth = [truth_sample(s) for s in slices] if "truth" in args.modes else None
    surveyed = None
    for rank in sorted(args.rank, reverse=True):  # learned first: its survey also gives the blob order's finds
        c1 = cpu()
        if rank == "blob" and surveyed is not None:
            inputs, find_cpu = blob_from_survey(surveyed), 0.0
        else:
            inputs = find_inputs(load_preset(args.inner, view="full", find="found", find_rank=rank, find_top=1),
                                 slices, print)
            find_cpu = cpu() - c1
        if rank == "learned":
            surveyed = inputs
        for task in args.tasks:
            y = task_labels(frame, task)
            for mode, top in [(m, t) for m in args.modes for t in (tops if rank == "learned" else [1])]:
                c1 = cpu()
                cfg = load_preset(args.inner, view="full", find=mode, find_rank=rank, task=task, find_top=top)
                run = dataclasses.replace(inputs, truth=inputs.truth if truth is None else truth,
                                          finder=dataclasses.replace(inputs.finder, top=top))
                proba = np.zeros((n, N_CLASSES[task]))
                loc = []
                n_loc = args.n_loc // len(splits) if mode == "found" and task == "binary" and top == 1 else 0
                for k, (tr, va) in enumerate(splits):
                    model, _, p = train_found_fold(cfg, run, frame, y, tr, k, tmp / f"{rank}{mode}{k}.pt", False,
                                                   lambda m: None, va)
                    proba[va] = p
                    if n_loc:
                        idx = list(va[:n_loc])
                        for i in idx:
                            if i not in lungs:
                                lungs[i] = lung_mask_array(slices[i].array[slices[i].array.shape[0] // 2]
                                                           if slices[i].array.ndim == 3 else slices[i].array,
                                                           slices[i].spacing).astype(bool)
                        loc += localise(model, slices, run.found, idx, lungs)
                summ, text = cv_summary(task, y, proba, splits)
                summ["cpu_s"] = cpu() - c1
                hit = detection(slices, run.found).in_nodule.to_numpy()
                if task == "binary":  # how the slices whose nodule was found / missed score
                    summ["auc_found"], summ["auc_missed"] = (float(roc_auc_score(y[sel], proba[sel, 1]))
                                                             for sel in (hit, ~hit))
                    text += f"; where found AUC {summ['auc_found']:.3f} (n={hit.sum()}), missed " \
                            f"{summ['auc_missed']:.3f} (n={(~hit).sum()})"
                name = f"find_crop_{rank}_{mode}_{task}_{args.inner}" + (f"_top{top}" if top > 1 else "")
                results[name] = summ
                write_oof(args.out / "runs" / name, frame, frame.sample_id, y, proba, splits)
                print(f"find-crop ({rank} ranking, {'favourite' if top == 1 else f'soft top {top}'}, {mode} crops for "
                      f"training, {task}, inner {args.inner}): {text}; {summ['cpu_s']:.0f} CPU-s")
                if loc:
                    table = pd.DataFrame(loc)
                    table.to_csv(args.out / f"localisation_{rank}_{args.inner}.csv", index=False)
                    means = table.mean(numeric_only=True).round(3).to_dict()
                    results[f"localisation_{rank}_{args.inner}"] = {"n": len(table), **means}
                    print(f"localisation find-then-classify ({rank} ranking; n={len(table)} held-out slices; "
                          "miss = no heat): " + json.dumps(means))
        # after the CV: a learned ranking's finds are each fold's held-out picks
        if rank == "learned" and args.real:
            results["real_slices"] = real_check(args.real, inputs, frame)
        det = detection(slices, inputs.found)
        det.insert(0, "sample_id", frame.sample_id.to_numpy())
        det.to_csv(args.out / f"detection_{rank}.csv", index=False)
        results[f"detection_{rank}"] = print_detection(rank, det, find_cpu / n)
    if args.nodules:
        nds = SliceDataset(args.nodules).view("nodule")
        nframe = nds.frame.reset_index(drop=True)
        key = frame[args.match].astype(str) if args.match else \
            frame.sample_id.astype(str).str.replace("_full", "_nodule", regex=False)
        pos = {sid: i for i, sid in enumerate(nframe.sample_id.astype(str))}
        where = [pos.get(k) for k in key]
        if any(w is None for w in where):
            print(f"nodule view: {sum(w is None for w in where)} full slices without their nodule sample; skipped")
        else:
            nsl = [load_slice(nds, w, "context") for w in where]
            for task in args.tasks:
                c1 = cpu()
                y = task_labels(frame, task)
                cfg = load_preset("default", view="nodule", task=task)
                proba = np.zeros((n, N_CLASSES[task]))
                for k, (tr, va) in enumerate(splits):
                    _, _, p = train_fold(cfg, nsl, frame, y, tr, k, tmp / f"nod{k}.pt", False, lambda m: None, va)
                    proba[va] = p
                summ, text = cv_summary(task, y, proba, splits)
                summ["cpu_s"] = cpu() - c1
                results[f"nodule_view_default_{task}"] = summ
                write_oof(args.out / "runs" / f"nodule_view_default_{task}", frame, key, y, proba, splits)
                print(f"nodule view, default preset, {task}, same nodules and folds: {text}; {summ['cpu_s']:.0f} CPU-s")
    results["wall_s"], results["cpu_s"] = time.perf_counter() - t0, cpu() - c0
    results["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    (args.out / "results.json").write_text(json.dumps(results, indent=1, default=float))
    print(f"total {results['wall_s']:.0f} s wall, {results['cpu_s']:.0f} CPU-s, max RSS "
          f"{results['max_rss_mb']:.0f} MB (shared 2-core machine)")


if __name__ == "__main__":
    main()
