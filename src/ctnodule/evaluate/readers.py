"""Radiologist-level agreement: the model, the other readers' consensus and single readers, side by side.

LIDC nodules carry 1-4 independent malignancy ratings (`reader_ratings`, "4;4;3;2"). Three comparisons,
each pooled over (nodule, reader) pairs, with patient-bootstrap 95 % CIs:

- `reader_vs_reader`: every ordered pair of two readers of one nodule (both directions, so QWK is
  symmetric) — how much radiologists agree with each other;
- `others_vs_reader`: each reader held out against the consensus of the nodule's OTHER readers (median
  rounded half up, `consensus_rating`; their mean is the AUC score) — the fair human comparator, since a
  consensus always agrees better with an individual than individuals do with each other;
- `model_vs_reader`: the model against each single reader.

Per pair: QWK over the 5 scores, exact agreement, within-one agreement, and the binary ROC-AUC of the
comparator's score for "this reader rated 4-5". The model's class is its arg-max score (as in the run's
own QWK/accuracy); its AUC score is the expected score sum_k p_k * k (5-class) or P(malignant) (binary,
which has AUC only). Caveat: the model was trained on the majority vote, which includes the held-out
reader, so model_vs_reader is slightly flattered against others_vs_reader.

Nodules matched to their readers only approximately (`reader_match` nearest/ambiguous, VOI export) are
counted apart: the headline block uses the unique matches (all rows when the column is absent, as for the
LIDC importer, whose ratings come with the nodule).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ctnodule.data.importers.lidc_annotations import consensus_rating
from ctnodule.evaluate.bootstrap import resample_counts, weighted_auc
from ctnodule.evaluate.metrics import kappa_from_confusion

KEYS = ("qwk", "exact", "within_one", "roc_auc")


def parse_ratings(values: pd.Series) -> list[list[int]]:
    """`reader_ratings` strings ("4;4;3;2") as int lists; empty/NaN -> []."""
    return [[int(x) for x in str(v).split(";") if x.strip()] if isinstance(v, str) else [] for v in values]


def agreement(truth: np.ndarray, pred: np.ndarray | None, score: np.ndarray, groups: np.ndarray,
              n_boot: int = 1000, seed: int = 0) -> dict:
    """QWK / exact / within-one of `pred` (1..5, None: AUC only) against `truth` (1..5), ROC-AUC of `score`
    for truth >= 4; point values and patient-bootstrap (`groups`) 95 % CIs, plus the pair and patient counts."""
    truth = np.asarray(truth, int)
    counts = np.vstack([np.ones(len(truth)), resample_counts(len(truth), n_boot, seed, groups)])
    stats = {"roc_auc": weighted_auc(np.asarray(score, float), truth >= 4, counts)}
    if pred is not None:
        pairs = np.zeros((len(truth), 25))
        pairs[np.arange(len(truth)), (truth - 1) * 5 + (np.asarray(pred, int) - 1)] = 1.0
        conf = (counts @ pairs).reshape(-1, 5, 5)
        idx = np.arange(5)
        total = conf.sum(axis=(1, 2))
        stats["qwk"] = kappa_from_confusion(conf)
        stats["exact"] = np.trace(conf, axis1=1, axis2=2) / total
        stats["within_one"] = (conf * (np.abs(idx[:, None] - idx[None]) <= 1)).sum(axis=(1, 2)) / total
    out: dict = {"n_pairs": len(truth), "n_patients": len(np.unique(groups))}
    for key in KEYS:
        if key in stats:
            boot = stats[key][1:][np.isfinite(stats[key][1:])]
            out[key] = float(stats[key][0])
            out[f"{key}_ci"] = [float(x) for x in np.percentile(boot, [2.5, 97.5])] if len(boot) else [np.nan] * 2
    return out


def reader_agreement(ratings: list[list[int]], patients: np.ndarray, proba: np.ndarray | None = None,
                     n_boot: int = 1000, seed: int = 0) -> dict:
    """The three comparisons (module doc) over nodules with their `ratings`; `proba` (n, 5) or (n, 2) adds
    model_vs_reader. Comparisons between readers use the nodules with at least two readers."""
    rows: dict[str, list[tuple]] = {"reader_vs_reader": [], "others_vs_reader": [], "model_vs_reader": []}
    classes = proba is not None and proba.shape[1] == 5
    for i, (own, patient) in enumerate(zip(ratings, patients)):
        for j, r in enumerate(own):
            others = own[:j] + own[j + 1:]
            for o in others:
                rows["reader_vs_reader"].append((r, o, o, patient))
            if others:
                rows["others_vs_reader"].append((r, consensus_rating(others), float(np.mean(others)), patient))
            if proba is not None:
                score = float(proba[i] @ np.arange(1, 6)) if classes else float(proba[i, 1])
                rows["model_vs_reader"].append((r, int(proba[i].argmax()) + 1 if classes else None, score, patient))
    out = {}
    for name, pairs in rows.items():
        if pairs:
            truth, pred, score, groups = (np.asarray(c, dtype=object) for c in zip(*pairs))
            has_pred = pred[0] is not None
            out[name] = agreement(truth.astype(int), pred.astype(int) if has_pred else None, score.astype(float),
                                  groups.astype(str), n_boot, seed)
    return out


def evaluate_readers(frame: pd.DataFrame, proba: np.ndarray | None = None, n_boot: int = 1000, seed: int = 0) -> dict:
    """`metrics.json`'s "readers" block for rows of `frame` (reader_ratings, patient_id, optional reader_match)
    aligned with `proba`: {"unique": comparisons, "approximate": comparisons, "n_nodules": {...}, "rule": ...}.
    Empty when no row has ratings."""
    ratings = parse_ratings(frame["reader_ratings"]) if "reader_ratings" in frame.columns else []
    if not any(ratings):
        return {}
    match = frame["reader_match"].astype(str).to_numpy() if "reader_match" in frame.columns \
        else np.full(len(frame), "unique")
    patients = frame["patient_id"].astype(str).to_numpy()
    out: dict = {"rule": "model class = arg-max score; model AUC score = expected score (5-class) or "
                         "P(malignant); consensus = median of the other readers rounded half up",
                 "n_nodules": {}}
    for name, keep in (("unique", match == "unique"), ("approximate", np.isin(match, ["nearest", "ambiguous"]))):
        keep &= np.array([len(r) > 0 for r in ratings])
        out["n_nodules"][name] = int(keep.sum())
        if keep.any():
            idx = np.flatnonzero(keep)
            out[name] = reader_agreement([ratings[i] for i in idx], patients[idx],
                                         None if proba is None else proba[idx], n_boot, seed)
    return out
