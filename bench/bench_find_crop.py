"""Find-then-classify on full slices (issue 13): detection, CV accuracy beside the nodule view, localisation.

On a slice dataset with full views and nodule masks (the composite set, the phantom, the LIDC import), it
prints:
1. detection: how often the finder's point (`preprocess.find`) lies in the true nodule mask, within 3/5/10 mm
   of it, and how often nothing is found; CPU seconds per slice;
2. patient-grouped 5-fold CV (seed 0, `patient_kfold`), binary AUC as mean +- sd over folds (pooled OOF in
   brackets) of the `find-crop` preset trained on found crops (`find: found`) and on true crops
   (`find: truth`); both always predict from FOUND crops. A miss is scored with the training prevalence.
   With `--nodules DIR` (a nodule-view dataset holding the same nodules, matched by `--match COLUMN` of the
   full view against its `sample_id`), the default nodule-view recipe on the same nodules and folds;
3. Grad-CAM localisation of find-then-classify on held-out slices, in the full slice's frame: the fold
   model's map of the crop placed back where the crop was cut (zero elsewhere), scored against the TRUE mask
   (`explain.localization`): heat in nodule (+3 mm), pointing game (+3 mm), heat in the lungs; "lung-masked"
   = the same map multiplied by the slice's lung mask first.

    PYTHONPATH=src OMP_NUM_THREADS=1 nice -n 10 python bench/bench_find_crop.py DATA --out /tmp/fc [--nodules VOI]
"""

from __future__ import annotations

import argparse
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
from ctnodule.data.splits import patient_kfold
from ctnodule.explain.core import GROW_MM, explain_batch, to_input_frame
from ctnodule.explain.gradcam import CamExplainer
from ctnodule.explain.localization import area_fraction, cam_mass_in_mask, grow_mask, pointing_game
from ctnodule.predict.run import Predictor
from ctnodule.preprocess.find import NoduleFinder
from ctnodule.preprocess.inputs import load_slices
from ctnodule.preprocess.lungmask import lung_mask_array
from ctnodule.recipe import load_preset
from ctnodule.train.find_crop import FindInputs, train_found_fold
from ctnodule.train.fold import train_fold
from ctnodule.vocab import task_labels


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def detection(slices, found) -> pd.DataFrame:
    rows = []
    for s, f in zip(slices, found):
        m = np.asarray(s.mask).astype(bool)
        if isinstance(f, str):
            rows.append({"found": False, "in_nodule": False, "dist_mm": np.inf})
            continue
        r, c = f.meta["found_r"], f.meta["found_c"]
        d = float(ndi.distance_transform_edt(~m, sampling=s.spacing)[r, c]) if m.any() else np.inf
        rows.append({"found": True, "in_nodule": bool(m[r, c]), "dist_mm": d,
                     "found_diameter_mm": f.meta["mask_diameter_mm"],
                     "true_diameter_mm": s.meta.get("mask_diameter_mm")})
    return pd.DataFrame(rows)


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--nodules", type=Path, help="nodule-view dataset with the same nodules")
    ap.add_argument("--match", default=None, help="full-view column holding the nodule dataset's sample_id")
    ap.add_argument("--modes", nargs="+", default=["found", "truth"])
    ap.add_argument("--inner", default="find-crop", help="preset of the nodule model inside (find-crop: the "
                    "default nodule recipe; nodule-cnn: the nodule-scale CNN, whose Grad-CAM can point)")
    ap.add_argument("--n-loc", type=int, default=1000, help="held-out slices explained (at most)")
    ap.add_argument("--limit", type=int, default=0, help="first N full slices only (smoke test)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    t0, c0 = time.perf_counter(), cpu()

    ds = SliceDataset(args.data).view("full")
    frame = ds.frame.reset_index(drop=True)
    slices = load_slices(ds, "context")
    if args.limit:
        frame, slices = frame.iloc[:args.limit].reset_index(drop=True), slices[:args.limit]
    y = task_labels(frame, "binary")
    print(f"{len(slices)} full slices, {frame['patient_id'].nunique()} patients, {int(y.sum())} malignant")

    c1 = cpu()
    found = NoduleFinder().try_each(slices)
    find_cpu = cpu() - c1
    det = detection(slices, found)
    det.to_csv(args.out / "detection.csv", index=False)
    n = len(det)
    print(f"detection: found {det.found.mean():.3f}, in nodule {det.in_nodule.mean():.3f}, within 3 mm "
          f"{(det.dist_mm <= 3).mean():.3f}, 5 mm {(det.dist_mm <= 5).mean():.3f}, 10 mm "
          f"{(det.dist_mm <= 10).mean():.3f} (n={n}); {find_cpu / n:.3f} CPU-s per slice")
    results = {"n": n, "detection": {"found": det.found.mean(), "in_nodule": det.in_nodule.mean(),
                                     "within_3mm": (det.dist_mm <= 3).mean(), "within_5mm": (det.dist_mm <= 5).mean(),
                                     "within_10mm": (det.dist_mm <= 10).mean(), "cpu_s_per_slice": find_cpu / n}}
    splits = patient_kfold(frame, "binary", 5, 0)
    for tr, va in splits:
        assert not set(frame.patient_id.iloc[tr]) & set(frame.patient_id.iloc[va])
    lungs = {}
    tmp = Path(tempfile.mkdtemp(prefix="fc-", dir=args.out))
    for mode in args.modes:
        c1 = cpu()
        cfg = load_preset(args.inner, view="full", find=mode)
        from ctnodule.preprocess.find import truth_sample

        inputs = FindInputs(found, [truth_sample(s) for s in slices] if mode == "truth" else None, NoduleFinder())
        proba = np.zeros((n, 2))
        loc = []
        n_loc = args.n_loc // len(splits)
        for k, (tr, va) in enumerate(splits):
            model, _, p = train_found_fold(cfg, inputs, frame, y, tr, k, tmp / f"{mode}{k}.pt", False,
                                           lambda m: None, va)
            proba[va] = p
            if mode == "found" and n_loc:
                idx = list(va[:n_loc])
                for i in idx:
                    if i not in lungs:
                        plane = slices[i].array[slices[i].array.shape[0] // 2] if slices[i].array.ndim == 3 \
                            else slices[i].array
                        lungs[i] = lung_mask_array(plane, slices[i].spacing).astype(bool)
                loc += localise(model, slices, found, idx, lungs)
        summ = auc_summary(y, proba, splits)
        summ["cpu_s"] = cpu() - c1
        results[f"find_crop_{mode}_{args.inner}"] = summ
        pd.DataFrame({"sample_id": frame.sample_id, "y": y, "proba_1": proba[:, 1]}).to_csv(
            args.out / f"oof_{mode}.csv", index=False)
        print(f"find-crop ({mode} crops for training, inner {args.inner}): AUC {summ['auc_mean']:.3f} +- {summ['auc_sd']:.3f} "
              f"(pooled {summ['auc_pooled']:.3f}); {summ['cpu_s']:.0f} CPU-s")
        if loc:
            table = pd.DataFrame(loc)
            table.to_csv(args.out / f"localisation_find_crop_{args.inner}.csv", index=False)
            means = table.mean(numeric_only=True).round(3).to_dict()
            results[f"localisation_find_crop_{args.inner}"] = {"n": len(table), **means}
            print(f"localisation find-then-classify (n={len(table)} held-out slices; miss = no heat): "
                  + json.dumps(means))
    if args.nodules:
        c1 = cpu()
        nds = SliceDataset(args.nodules).view("nodule")
        nframe = nds.frame.reset_index(drop=True)
        key = frame[args.match].astype(str) if args.match else \
            frame.sample_id.astype(str).str.replace("_full", "_nodule", regex=False)
        pos = {sid: i for i, sid in enumerate(nframe.sample_id.astype(str))}
        where = [pos.get(k) for k in key]
        if any(w is None for w in where):
            print(f"nodule view: {sum(w is None for w in where)} full slices without their nodule sample; skipped")
        else:
            nslices = load_slices(nds, "context")
            nsl = [nslices[w] for w in where]
            cfg = load_preset("default", view="nodule")
            proba = np.zeros((n, 2))
            for k, (tr, va) in enumerate(splits):
                _, _, p = train_fold(cfg, nsl, frame, y, tr, k, tmp / f"nod{k}.pt", False, lambda m: None, va)
                proba[va] = p
            summ = auc_summary(y, proba, splits)
            summ["cpu_s"] = cpu() - c1
            results["nodule_view_default"] = summ
            print(f"nodule view, default preset, same nodules and folds: AUC {summ['auc_mean']:.3f} +- "
                  f"{summ['auc_sd']:.3f} (pooled {summ['auc_pooled']:.3f}); {summ['cpu_s']:.0f} CPU-s")
    results["wall_s"], results["cpu_s"] = time.perf_counter() - t0, cpu() - c0
    (args.out / "results.json").write_text(json.dumps(results, indent=1, default=float))
    print(f"total {results['wall_s']:.0f} s wall, {results['cpu_s']:.0f} CPU-s (shared 2-core machine)")


if __name__ == "__main__":
    main()
