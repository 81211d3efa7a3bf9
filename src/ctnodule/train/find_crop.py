"""Training a find-then-classify model (`find: found|truth`, preset `find-crop`): full slices in, the nodule
model of the default recipe trained on nodule crops.

Every full slice is searched once per run (`find_inputs`) and each fold reuses the result:
- with the blob ranking (`find_rank: blob`) the finder has nothing to fit: each slice's find is fixed;
  with the learned one (`find_rank: learned`) every slice's candidates are surveyed once and each fold fits
  its candidate ranker on its own training slices (their true masks are the labels), so a held-out slice is
  always found by a ranker that never saw it;
- `find: found` trains on the crops found the same way as at prediction (the model learns the finder's own
  cuts and outlines), those of the training slices whose find lies in the TRUE nodule (a wrong find's crop
  would teach the nodule's label on a vessel; the true mask chooses training rows only, as it labels the
  ranker's candidates); `find: truth` trains on crops around the true masks;
- a held-out slice is always judged on its FOUND crop (with `find_top` > 1 on the ranker's k best crops, their
  probabilities weighted by its scores; training uses each slice's favourite); with `segmenter: learned` each
  fold first fits the learned segmenter on its training slices' TRUE crops and each judged crop is judged on
  its classical and on its learned outline, averaged (`preprocess.segnet.with_learned_outlines`), as the
  final model does at prediction. Where nothing was found the
  fold reports the training folds' class frequencies for it and counts it (`found.csv`, the log): the miss
  costs accuracy in the CV numbers instead of being dropped from them. At prediction time a miss is a
  `DataError`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ctnodule.data.slice import Slice
from ctnodule.errors import DataError
from ctnodule.models.fitted import FittedModel
from ctnodule.preprocess.find import NoduleFinder, Probe, judged, ranked_sample, survey, truth_sample
from ctnodule.preprocess.rank import CandidateRanker
from ctnodule.preprocess.segnet import with_learned_outlines
from ctnodule.recipe import TrainConfig
from ctnodule.train.fold import fit_segmenter, fold_name, train_fold
from ctnodule.vocab import N_CLASSES, class_names


@dataclasses.dataclass
class FindInputs:
    """Per sample of a run: its found crop (or the reason none was found), its true crop for `find: truth`.

    With a learned ranking (`find_rank: learned`) every slice's candidates are surveyed once (`probes`) and
    each fold fits its own ranker on its training slices and cuts the crops it picks (`for_fold`); `found`
    then collects each slice's pick by the fold that held it out (what `found.csv` shows)."""

    found: list[Slice | str]
    truth: list[Slice | None] | None  # the crops at the true masks (`find: truth`, or to fit a learned segmenter)
    finder: NoduleFinder
    slices: list[Slice] | None = None
    probes: list[list[Probe] | str] | None = None

    def table(self, frame: pd.DataFrame) -> pd.DataFrame:
        """`found.csv`: where each slice's nodule was found (or why not)."""
        rows = []
        for sid, f in zip(frame["sample_id"].astype(str), self.found):
            if isinstance(f, str):
                rows.append({"sample_id": sid, "found": False, "reason": f})
            else:
                m = f.meta
                rows.append({"sample_id": sid, "found": True, "found_r": m["found_r"], "found_c": m["found_c"],
                             "found_rank": m["found_rank"], "found_score": m["found_score"],
                             "found_diameter_mm": m["mask_diameter_mm"], "found_crop_r0": m["found_crop_r0"],
                             "found_crop_c0": m["found_crop_c0"], "reason": ""})
        return pd.DataFrame(rows)

    def for_fold(self, train_idx: np.ndarray, held: np.ndarray, seed: int) -> tuple[NoduleFinder, dict[int, Slice | str]]:
        """The finder of a fold (its ranker fitted on the probes and TRUE masks of `train_idx` when the
        ranking is learned) and what it finds on each of `train_idx` (its favourite: the crops to train on)
        and of `held` (as at prediction: soft with the finder's `top` > 1)."""
        if self.probes is None:
            return self.finder, {int(i): self.found[i] for i in np.concatenate([train_idx, held])}
        train = [i for i in train_idx if not isinstance(self.probes[i], str) and self.slices[i].mask is not None]
        ranker = CandidateRanker(seed).fit([self.probes[i] for i in train], [self.slices[i].mask for i in train])
        finder = dataclasses.replace(self.finder, ranker=ranker)
        picks: dict[int, Slice | str] = {}
        for rows, top in ((train_idx, 1), (held, finder.top)):
            for i in map(int, rows):
                probes = self.probes[i]
                try:
                    picks[i] = probes if isinstance(probes, str) else ranked_sample(
                        self.slices[i], probes, ranker, finder.min_diameter_mm, top=top)
                except DataError as exc:
                    picks[i] = str(exc)
        return finder, picks

    def on_nodule(self, i: int, crop: Slice) -> bool:
        """Does slice `i`'s find `crop` lie in the slice's TRUE nodule mask? For choosing training crops only: a
        wrong find's crop shows a vessel or the chest wall under the nodule's label. A slice without a mask
        cannot tell and counts as found."""
        mask = None if self.slices is None else self.slices[i].mask
        return mask is None or bool(np.asarray(mask)[crop.meta["found_r"], crop.meta["found_c"]])


def find_inputs(cfg: TrainConfig, slices: Sequence[Slice], log: Callable[[str], None]) -> FindInputs:
    """Search every full slice once (and cut the true crops for `find: truth`); with a learned ranking,
    survey every slice's candidates once instead."""
    finder = NoduleFinder(top=cfg.find_top)
    if cfg.find == "truth":
        truth: list[Slice | None] | None = [truth_sample(s) for s in slices]
    elif cfg.segmenter == "learned":  # a slice without a mask gives the segmenter nothing to learn from
        truth = [truth_sample(s) if s.mask is not None and np.any(s.mask) else None for s in slices]
    else:
        truth = None
    if cfg.find_rank == "learned":
        probes: list[list[Probe] | str] = []
        for s in slices:
            try:
                probes.append(survey(s, n_candidates=finder.n_candidates, min_diameter_mm=finder.min_diameter_mm))
            except DataError as exc:
                probes.append(str(exc))
        log(f"find: {sum(not isinstance(p, str) for p in probes)} of {len(slices)} full slices have candidates; "
            "each fold ranks them with a ranker fitted on its training slices")
        reasons: list[Slice | str] = [p if isinstance(p, str) else "not held out in any fold" for p in probes]
        return FindInputs(reasons, truth, finder, list(slices), probes)
    found = finder.try_each(slices)
    misses = sum(isinstance(f, str) for f in found)
    log(f"find: a nodule found on {len(found) - misses} of {len(found)} full slices")
    return FindInputs(found, truth, finder, list(slices))


def train_found_fold(cfg: TrainConfig, inputs: FindInputs, frame: pd.DataFrame, y: np.ndarray,
                     train_idx: np.ndarray, fold: int, checkpoint: Path, resume: bool, log: Callable[[str], None],
                     predict_idx: np.ndarray | None = None) -> tuple[FittedModel, list[dict], np.ndarray | None]:
    """`train_fold` on the nodule crops of rows `train_idx` (found or true, per `cfg.find`); returns the
    model (carrying its finder), its history and the probabilities of rows `predict_idx` judged on their
    found crops (a soft find's: its candidates' weighted mean; training class frequencies where none was
    found)."""
    held = np.asarray([] if predict_idx is None else predict_idx, dtype=int)
    finder, found = inputs.for_fold(np.asarray(train_idx, int), held, cfg.seed)
    for i in held:
        inputs.found[i] = found[int(i)]

    def ok(i: int) -> bool:
        return not isinstance(found[int(i)], str)

    name = fold_name(fold)
    if cfg.find == "truth":
        train_rows = np.asarray(train_idx, dtype=int)
    else:  # the finds that lie in the nodule: a wrong find's crop would teach the nodule's label on something else
        train_rows = np.asarray([i for i in train_idx if ok(i) and inputs.on_nodule(int(i), found[int(i)])], dtype=int)
        if len(train_rows) < len(train_idx):
            log(f"{name}: trained on the {len(train_rows)} of "
                f"{len(train_idx)} training slices whose find lies in the nodule")
    missing = sorted(set(y[np.asarray(train_idx, int)]) - set(y[train_rows]))
    if missing:
        raise DataError(f"{name}: the finds lie in the nodule on {len(train_rows)} of {len(train_idx)} training "
                        f"slices, none of class {[class_names(cfg.task)[c] for c in missing]}: nothing to train the "
                        "nodule model on found crops; use find: truth (crops at the true masks) or more slices")
    pred_rows = np.asarray([i for i in held if ok(i)], dtype=int)
    train_crops = [inputs.truth[i] for i in train_rows] if cfg.find == "truth" else [found[int(i)] for i in train_rows]
    held_crops = [found[int(i)] for i in pred_rows]
    segmenter = None
    if cfg.segmenter == "learned":  # learns the drawn outline from the true crops, then outlines what is judged
        segmenter = fit_segmenter(cfg, [inputs.truth[int(i)] for i in train_idx if inputs.truth[int(i)] is not None],
                                  fold, log)
        held_crops = [with_learned_outlines(s, segmenter) for s in held_crops]
    judge, owner, decide = judged(held_crops)
    rows = np.concatenate([train_rows, pred_rows[owner]])
    model, history, proba = train_fold(cfg, train_crops + judge, frame.iloc[rows].reset_index(drop=True), y[rows],
                                       np.arange(len(train_rows)), fold, checkpoint, resume, log,
                                       predict_idx=None if predict_idx is None else
                                       np.arange(len(train_rows), len(rows)), segmenter=segmenter)
    model.finder = finder.get_params()
    if predict_idx is None:
        return model, history, None
    prior = np.bincount(y[train_rows], minlength=N_CLASSES[cfg.task]) / len(train_rows)
    out = np.tile(prior, (len(predict_idx), 1))
    position = {int(i): k for k, i in enumerate(predict_idx)}
    for k, p in zip(pred_rows, decide(proba)):
        out[position[int(k)]] = p
    missed = len(predict_idx) - len(pred_rows)
    if missed:
        log(f"fold {fold}: no nodule found on {missed} held-out slice(s): scored with the training class "
            "frequencies")
    return model, history, out
