"""Research bench for issue 9: label modes and feature sets of the linear (default-style) recipe, on the real VOIs.

Every recipe is a (binary scorer, 5-class model) pair like the default preset (a binary and a 5-class run),
fitted on the training rows of each outer fold of an existing run's patient-grouped splits (`--splits`,
default: the default preset's 5-class run), scored against the MAX-VOTE label whatever it trained on:
binary AUC of the binary score, 5-class QWK and accuracy of the 5-class argmax. Reader ratings are only
ever targets, never inputs.

Feature sets (all standardised with training-fold statistics, missing values -> training median):
- `desc`: the 20 mask descriptors (`tabular_features(..., "descriptors")`);
- `img4`: 4 principal components (fitted on the training rows) of the frozen EfficientNet-Lite0 features of
  the default preprocessing's 2.5D crop, flip-averaged (what the default preset's logreg head sees);
- `rad`: pyradiomics' 107 3D IBSI features (`import voi --radiomics` manifest columns);
- `cnn`: a nodule CNN's out-of-fold P(score >= k) (4 cumulative probabilities) from `--cnn-oof` files,
  for stacking. Caveat: the CNN that predicted a training row of outer fold k was itself trained on
  fold k's rows, so stacking on these is mildly optimistic (a nested CNN CV was beyond the CPU budget).

Label modes (targets only): `maxvote` (one-hot), `soft` (the readers' empirical distribution: each row
enters once per class with weight = share of readers, i.e. cross-entropy on the soft target; binary:
share of readers >= 4), `mean` (the two-point distribution on the integers either side of the readers'
mean, so the target's expected score is their mean; binary: as soft).

Regularisation: `C` fixed (1.0 like the default, 0.1 like the radiomics baseline) or `tuned`: chosen
from C_GRID by patient-grouped 4-fold CV on the outer training rows only (log-loss), per task.
`nested` picks, inside each outer training fold, the recipe with the best inner-CV log-loss among the
candidates (`NESTED`), `nested_metric` the one with the best inner binary AUC + 5-class QWK, so their
outer scores are honest estimates of "try them all, keep the best".

Prints per recipe: CV mean ± sd over folds and pooled OOF (AUC / QWK / accuracy), model-vs-single-reader
agreement (unique matches), the paired patient-bootstrap difference vs the default replica and vs the
radiomics baseline, CPU seconds; OOF predictions per recipe to `--out`.

    PYTHONPATH=src OMP_NUM_THREADS=1 nice -n 10 python bench/bench_labels.py --recipes all
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, cohen_kappa_score, log_loss, roc_auc_score
from sklearn.model_selection import GroupKFold
from sklearn.preprocessing import StandardScaler

from ctnodule.data.dataset import SliceDataset
from ctnodule.data.splits import load_splits
from ctnodule.evaluate.baselines import size_baseline
from ctnodule.evaluate.bootstrap import resample_counts, weighted_auc, weighted_metrics
from ctnodule.evaluate.readers import evaluate_readers
from ctnodule.models.backbones import create_backbone
from ctnodule.models.descriptors import TabularScaler, tabular_features
from ctnodule.models.features import extract_features
from ctnodule.preprocess import Pipeline, PreprocessConfig
from ctnodule.preprocess.inputs import load_slices, to_images
from ctnodule.train.labels import target_distributions

C_GRID = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
# name: (feature sets, label mode, C or "tuned")
RECIPES: dict[str, tuple[tuple[str, ...], str, float | str]] = {
    "default_maxvote": (("img4", "desc"), "maxvote", 1.0),  # the default preset's logreg head, replicated
    "radiomics": (("rad",), "maxvote", 0.1),  # the metrics.json radiomics baseline, replicated
    "radiomics_soft": (("rad",), "soft", 0.1),
    "default_soft": (("img4", "desc"), "soft", 1.0),
    "default_mean": (("img4", "desc"), "mean", 1.0),
    "desc_maxvote": (("desc",), "maxvote", 1.0),
    "desc_soft": (("desc",), "soft", 1.0),
    "desc_mean": (("desc",), "mean", 1.0),
    "desc_tuned": (("desc",), "maxvote", "tuned"),
    "desc_soft_tuned": (("desc",), "soft", "tuned"),
    "desc_rad_tuned": (("desc", "rad"), "maxvote", "tuned"),
    "desc_rad_soft_tuned": (("desc", "rad"), "soft", "tuned"),
    "default_rad_tuned": (("img4", "desc", "rad"), "maxvote", "tuned"),
    "desc_cnn": (("desc", "cnn"), "maxvote", 1.0),
    "desc_cnn_tuned": (("desc", "cnn"), "maxvote", "tuned"),
    "desc_rad_cnn_tuned": (("desc", "rad", "cnn"), "maxvote", "tuned"),
}
REFERENCES = ("default_run", "default_maxvote", "radiomics")  # paired differences are printed against these
NESTED = ("default_maxvote", "default_soft", "default_mean", "desc_maxvote", "desc_soft", "desc_mean",
          "desc_tuned", "desc_soft_tuned", "desc_rad_tuned", "desc_rad_soft_tuned", "default_rad_tuned")


def lite0_features(slices) -> np.ndarray:
    """(N, 1280) flip-averaged frozen Lite0 features of the default preprocessing's crops (content-cached)."""
    pipe = Pipeline.from_config(PreprocessConfig.resolve("default", "nodule")).fit(slices)
    images = to_images(list(pipe.transform_many(slices, workers=1)))
    feats = extract_features(images, create_backbone("efficientnet_lite0", "auto"), pooled=True, tta=True)
    return feats.astype(np.float32).mean(0)


def two_point(dist: np.ndarray) -> np.ndarray:
    """The `mean` label mode's target: the distribution on the two integers either side of the readers'
    mean score (so its expected score is their mean), from their empirical distribution `dist`."""
    mean = dist @ np.arange(5)
    lo = np.floor(mean).astype(int).clip(0, 4)
    out = np.zeros_like(dist)
    frac = mean - lo
    out[np.arange(len(dist)), lo] = 1 - frac
    out[np.arange(len(dist)), np.minimum(lo + 1, 4)] += frac
    return out


def fit_soft_lr(x: np.ndarray, t: np.ndarray, C: float) -> LogisticRegression:
    """Multinomial LR on soft targets `t` (N, K): each row once per class with weight t[:, k]."""
    rows, cls = np.nonzero(t > 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return LogisticRegression(C=C, max_iter=3000).fit(x[rows], cls, sample_weight=t[rows, cls])


def proba(model: LogisticRegression, x: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros((len(x), k))
    out[:, model.classes_] = model.predict_proba(x)
    return out


class Features:
    """Fold-wise design matrices: standardisation / PCA fitted on the rows given to `fit`."""

    def __init__(self, tables: dict[str, np.ndarray], sets: tuple[str, ...]):
        self.tables, self.sets = tables, sets

    def matrix(self, tr: np.ndarray, rows: np.ndarray) -> np.ndarray:
        parts = []
        for s in self.sets:
            t = self.tables[s]
            if s == "img4":
                sc = StandardScaler().fit(t[tr])
                pca = PCA(4, random_state=0).fit(sc.transform(t[tr]))
                parts.append(pca.transform(sc.transform(t[rows])))
            else:
                sc = TabularScaler().fit(t[tr])
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    parts.append(sc.transform(t[rows]))
        return np.hstack(parts)

    def pair(self, tr: np.ndarray, te: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Train/test matrices, the final StandardScaler fitted on train (as the default's pipeline does)."""
        a, b = self.matrix(tr, tr), self.matrix(tr, te)
        sc = StandardScaler().fit(a)
        return sc.transform(a), sc.transform(b)


def fit_predict(feats: Features, dist: dict[str, np.ndarray], mode: str, C5: float, C2: float, tr: np.ndarray,
                te: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(5-class proba, binary P(malignant)) of rows `te` from models fitted on rows `tr`."""
    xa, xb = feats.pair(tr, te)
    t = dist[mode][tr]
    p5 = proba(fit_soft_lr(xa, t, C5), xb, 5)
    t2 = np.stack([t[:, :3].sum(1), t[:, 3:].sum(1)], 1)
    p2 = proba(fit_soft_lr(xa, t2, C2), xb, 2)[:, 1]
    return p5, p2


def inner_oof(feats: Features, dist: dict[str, np.ndarray], groups: np.ndarray, mode: str, C5: float, C2: float,
              tr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Patient-grouped 4-fold CV predictions on rows `tr` only (inner folds of an outer training fold)."""
    p5, p2 = np.zeros((len(tr), 5)), np.zeros(len(tr))
    for a, b in GroupKFold(4).split(tr, groups=groups[tr]):
        p5[b], p2[b] = fit_predict(feats, dist, mode, C5, C2, tr[a], tr[b])
    return p5, p2


def inner_loss(feats: Features, dist: dict[str, np.ndarray], y5: np.ndarray, groups: np.ndarray, mode: str,
               C5: float, C2: float, tr: np.ndarray) -> tuple[float, float]:
    """Inner-CV log-loss (5-class, binary) against the max vote."""
    p5, p2 = inner_oof(feats, dist, groups, mode, C5, C2, tr)
    p5 = np.clip(p5, 1e-7, 1)  # a class absent from an inner training fold has probability 0
    return (log_loss(y5[tr], p5 / p5.sum(1, keepdims=True), labels=range(5)),
            log_loss(y5[tr] >= 3, np.clip(p2, 1e-7, 1 - 1e-7)))


def tuned_C(feats, dist, y5, groups, mode, tr) -> tuple[float, float]:
    losses = [inner_loss(feats, dist, y5, groups, mode, c, c, tr) for c in C_GRID]
    return C_GRID[int(np.argmin([l[0] for l in losses]))], C_GRID[int(np.argmin([l[1] for l in losses]))]


def metrics(y5: np.ndarray, p5: np.ndarray, p2: np.ndarray) -> dict[str, float]:
    pred = p5.argmax(1)
    return {"auc": roc_auc_score(y5 >= 3, p2), "qwk": cohen_kappa_score(y5, pred, weights="quadratic"),
            "acc": accuracy_score(y5, pred)}


def paired(y5, a5, a2, b5, b2, groups, n_boot=2000, seed=0) -> dict[str, tuple[float, float, float]]:
    counts = np.vstack([np.ones(len(y5)), resample_counts(len(y5), n_boot, seed, groups)])
    d = {"auc": weighted_auc(a2, y5 >= 3, counts) - weighted_auc(b2, y5 >= 3, counts)}
    ma, mb = weighted_metrics(y5, a5, "multiclass", counts), weighted_metrics(y5, b5, "multiclass", counts)
    d["qwk"], d["acc"] = ma["qwk"] - mb["qwk"], ma["accuracy"] - mb["accuracy"]
    return {k: (float(v[0]), *map(float, np.nanpercentile(v[1:], [2.5, 97.5]))) for k, v in d.items()}


def run(name: str, tables, dist, y5, groups, splits, log) -> tuple[np.ndarray, np.ndarray, list, dict]:
    p5, p2 = np.zeros((len(y5), 5)), np.zeros(len(y5))
    folds, chosen = [], []
    for f, (tr, te) in enumerate(splits):
        tr, te = np.asarray(tr), np.asarray(te)
        if name in ("nested", "nested_metric"):
            scores = {}
            for cand in NESTED:
                sets, mode, C = RECIPES[cand]
                feats = Features(tables, sets)
                Cs = tuned_C(feats, dist, y5, groups, mode, tr) if C == "tuned" else (C, C)
                if name == "nested":  # the sum of the two inner log-losses (5-class + binary) decides
                    scores[cand] = (sum(inner_loss(feats, dist, y5, groups, mode, *Cs, tr)), Cs)
                else:  # inner binary AUC + 5-class QWK decide (the headline metrics)
                    q5, q2 = inner_oof(feats, dist, groups, mode, *Cs, tr)
                    m = metrics(y5[tr], q5, q2)
                    scores[cand] = (-(m["auc"] + m["qwk"]), Cs)
            best = min(scores, key=lambda c: scores[c][0])
            sets, mode, _ = RECIPES[best]
            Cs = scores[best][1]
            chosen.append(best)
        else:
            sets, mode, C = RECIPES[name]
            feats = Features(tables, sets)
            Cs = tuned_C(feats, dist, y5, groups, mode, tr) if C == "tuned" else (C, C)
            chosen.append(Cs)
        p5[te], p2[te] = fit_predict(Features(tables, sets), dist, mode, *Cs, tr, te)
        folds.append(metrics(y5[te], p5[te], p2[te]))
    log(f"  {name}: per fold {[round(m['auc'], 3) for m in folds]} chosen {chosen}")
    return p5, p2, folds, {"chosen": [str(c) for c in chosen]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="/work/scratch/data/voi-readers-radiomics")
    ap.add_argument("--splits", default="/work/scratch/runs/voi-multiclass", help="a run folder with splits/")
    ap.add_argument("--recipes", default="all", help="comma-separated names of RECIPES (+ 'nested'), or all")
    ap.add_argument("--binary-run", default="/work/scratch/runs/voi-binary", help="the default preset's binary run")
    ap.add_argument("--cnn-oof", default="", help="5-class OOF of a CNN to stack as 'cnn': bench_image_model's oof_*.csv (img_*) or a run's oof_predictions.csv")
    ap.add_argument("--out", default="/work/scratch/labels/bench")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def log(msg: str) -> None:
        print(msg, flush=True)
        with open(out / "bench.log", "a") as fh:
            fh.write(msg + "\n")

    t0, c0 = time.time(), time.process_time()
    ds = SliceDataset(args.data).view("nodule")
    frame = ds.frame.reset_index(drop=True)
    slices = load_slices(ds, "context")
    y5 = frame["malignancy"].astype(int).to_numpy() - 1
    groups = frame["patient_id"].astype(str).to_numpy()
    dist = {m: target_distributions(frame, m) for m in ("maxvote", "soft")}
    dist["mean"] = two_point(dist["soft"])
    tables = {"desc": tabular_features(slices, "descriptors"), "rad": tabular_features(slices, "radiomics")}
    names = list(RECIPES) + ["nested", "nested_metric"] if args.recipes == "all" else args.recipes.split(",")
    if any("img4" in RECIPES.get(n, ((),))[0] for n in names) or any(n.startswith("nested") for n in names):
        tables["img4"] = lite0_features(slices)
    if args.cnn_oof:
        cnn = pd.read_csv(args.cnn_oof).set_index("sample_id").loc[frame["sample_id"]]
        prefix = "img_" if "img_0" in cnn else "proba_"  # a bench_image_model oof csv (image only) or a run's
        pc = cnn[[f"{prefix}{k}" for k in range(5)]].to_numpy()
        tables["cnn"] = np.log(np.clip(1 - np.cumsum(pc, 1)[:, :4], 1e-4, 1))  # log P(score > k)
    else:
        names = [n for n in names if "cnn" not in n]
    splits = load_splits(args.splits, frame)
    log(f"{len(frame)} nodules, {len(set(groups))} patients, {len(splits)} folds from {args.splits}; features "
        f"{ {k: v.shape[1] for k, v in tables.items()} }; setup {time.process_time() - c0:.0f} CPU s")
    results = {}
    # references scored the same way: the default preset's own runs (5-class run for QWK/accuracy, binary
    # run for AUC; the binary run has its own binary-stratified folds) and the size-only baseline
    mc = pd.read_csv(Path(args.splits) / "oof_predictions.csv").set_index("sample_id").loc[frame["sample_id"]]
    bn = pd.read_csv(Path(args.binary_run) / "oof_predictions.csv").set_index("sample_id").loc[frame["sample_id"]]
    results["default_run"] = (mc[[f"proba_{k}" for k in range(5)]].to_numpy(), bn["proba_1"].to_numpy())
    results["size"] = (size_baseline(frame, "multiclass", splits), size_baseline(frame, "binary", splits)[:, 1])
    for name in ("default_run", "size"):
        p5, p2 = results[name]
        rd = evaluate_readers(frame, p5, n_boot=500)["unique"]["model_vs_reader"]
        log(f"{name} (pooled only): " + " ".join(f"{k} {v:.3f}" for k, v in metrics(y5, p5, p2).items())
            + f" | model-vs-reader QWK {rd['qwk']:.3f}")
    for name in names:
        c1 = time.process_time()
        p5, p2, folds, info = run(name, tables, dist, y5, groups, splits, log)
        cpu = time.process_time() - c1
        results[name] = (p5, p2)
        pooled = metrics(y5, p5, p2)
        rd = evaluate_readers(frame, p5, n_boot=500)["unique"]["model_vs_reader"]
        row = {"recipe": name, "cpu_s": cpu, **info, "pooled": pooled, "reader_qwk": rd["qwk"],
               "reader_qwk_ci": rd["qwk_ci"], "reader_exact": rd["exact"], "reader_auc": rd["roc_auc"],
               **{k: [m[k] for m in folds] for k in ("auc", "qwk", "acc")}}
        for ref in REFERENCES:
            if ref in results and ref != name:
                row[f"vs_{ref}"] = paired(y5, p5, p2, *results[ref], groups)
        txt = "  ".join(f"{k} {np.mean(row[k]):.3f}±{np.std(row[k]):.3f}" for k in ("auc", "qwk", "acc"))
        vs = "  ".join(f"vs {r}: " + ", ".join(f"{k} {d:+.3f} [{lo:+.3f},{hi:+.3f}]" for k, (d, lo, hi) in row[f"vs_{r}"].items())
                       for r in REFERENCES if f"vs_{r}" in row)
        log(f"{name}: {txt} | pooled " + " ".join(f"{k} {v:.3f}" for k, v in pooled.items())
            + f" | model-vs-reader QWK {rd['qwk']:.3f} [{rd['qwk_ci'][0]:.3f},{rd['qwk_ci'][1]:.3f}] | {cpu:.0f} CPU s | {vs}")
        with open(out / "results.jsonl", "a") as fh:
            fh.write(json.dumps(row) + "\n")
        pd.DataFrame({"sample_id": frame["sample_id"], "patient_id": groups, "y5": y5,
                      **{f"p_{k}": p5[:, k] for k in range(5)}, "p_bin": p2}).to_csv(out / f"oof_{name}.csv", index=False)
    log(f"total wall {time.time() - t0:.0f} s, CPU {time.process_time() - c0:.0f} s")


if __name__ == "__main__":
    main()
