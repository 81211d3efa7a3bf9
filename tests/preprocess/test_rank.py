"""preprocess/rank.py: a candidate ranker fitted on phantom full slices finds more nodules on held-out
patients' slices than the blob order, never reads the slice's mask at prediction, and refuses to fit on
slices where no candidate lies on a nodule."""

from __future__ import annotations

import numpy as np
import pytest

from ctnodule.data.dataset import SliceDataset
from ctnodule.data.slice import Slice
from ctnodule.data.splits import patient_kfold
from ctnodule.errors import DataError
from ctnodule.preprocess.find import (
    FEATURES,
    RUNNERS_UP_KEY,
    WEIGHT_KEY,
    NoduleFinder,
    judged,
    survey,
    without_truth,
)
from ctnodule.preprocess.inputs import load_slices
from ctnodule.preprocess.rank import CandidateRanker


def _blind(s: Slice) -> Slice:
    return s.replace(mask=None, meta=without_truth(s.meta))


@pytest.fixture(scope="module")
def surveyed(phantom):
    """The phantom's full slices, their manifest, and every slice's candidates surveyed WITHOUT its mask."""
    ds = SliceDataset(phantom).view("full")
    slices = load_slices(ds, "context")
    return ds.frame.reset_index(drop=True), slices, [survey(_blind(s)) for s in slices]


def _hit(s: Slice, r: int, c: int) -> bool:
    return bool(np.asarray(s.mask).astype(bool)[r, c])


def test_survey_describes_every_candidate_without_the_mask(surveyed):
    _, slices, probes = surveyed
    solid = [sum(q.cand.source == "solid" for q in p) for p in probes]
    glass = [sum(q.cand.source == "ground_glass" for q in p) for p in probes]
    assert min(solid) >= 1 and max(solid) == 15 and max(glass) == 10  # the 15 best solid, 10 ground-glass
    assert all(q.rank == k for p in probes for k, q in enumerate(p))
    p = next(p for p in probes[0] if p.mask is not None)
    assert p.features.shape == (len(FEATURES),) and np.isfinite(p.features).all()
    again = survey(slices[0])  # with its mask and position: the same candidates, the same features
    np.testing.assert_array_equal(np.stack([q.features for q in again]), np.stack([q.features for q in probes[0]]))


def test_learned_ranking_finds_more_nodules_than_the_blob_order_on_held_out_patients(surveyed):
    frame, slices, probes = surveyed
    blob, learned = [], []
    for tr, va in patient_kfold(frame, "binary", 2, 0):
        ranker = CandidateRanker().fit([probes[i] for i in tr], [slices[i].mask for i in tr])
        for i in va:
            ok = [p for p in probes[i] if p.mask is not None]
            first = next(p for p in ok if p.rank < NoduleFinder.max_tries)
            best = ranker.pick(ok)
            blob.append(_hit(slices[i], first.cand.r, first.cand.c))
            learned.append(_hit(slices[i], best.cand.r, best.cand.c))
    # measured on this phantom (58 held-out slices): blob order 0.36, learned 0.72 (its bright vessels and
    # ribs are the distractors a ranker learns to pass over); the test fails if the ranking learns nothing
    assert np.mean(learned) >= np.mean(blob) + 0.1, (np.mean(blob), np.mean(learned))


def test_finder_with_a_ranker_takes_the_candidate_it_scores_highest(surveyed):
    _, slices, probes = surveyed
    ranker = CandidateRanker().fit(probes[1:], [s.mask for s in slices[1:]])
    found = NoduleFinder(ranker=ranker).find(_blind(slices[0]))
    best = ranker.pick([p for p in probes[0] if p.mask is not None])
    assert (found.meta["found_r"], found.meta["found_c"]) == (best.cand.r, best.cand.c)
    assert found.meta["found_rank"] == best.rank and found.meta["view"] == "nodule"


def test_soft_find_carries_the_rankers_next_best_weighted_by_their_scores(surveyed):
    _, slices, probes = surveyed
    ranker = CandidateRanker().fit(probes[1:], [s.mask for s in slices[1:]])
    hard = NoduleFinder(ranker=ranker).find(_blind(slices[0]))
    soft = NoduleFinder(ranker=ranker, top=3).find(_blind(slices[0]))
    ok = [p for p in probes[0] if p.mask is not None]
    scores = ranker.scores(ok)
    best = np.argsort(-scores, kind="stable")[:3]
    group = [soft, *soft.meta[RUNNERS_UP_KEY]]
    assert [(g.meta["found_r"], g.meta["found_c"]) for g in group] == [(ok[j].cand.r, ok[j].cand.c) for j in best]
    np.testing.assert_allclose([g.meta[WEIGHT_KEY] for g in group], scores[best] ** 2 / (scores[best] ** 2).sum())
    np.testing.assert_array_equal(soft.array, hard.array)  # the favourite is the hard find's
    assert RUNNERS_UP_KEY not in hard.meta and WEIGHT_KEY not in hard.meta


def test_judged_averages_a_soft_finds_candidates_and_leaves_hard_finds_as_they_are(surveyed):
    _, slices, probes = surveyed
    ranker = CandidateRanker().fit(probes[1:], [s.mask for s in slices[1:]])
    hard = NoduleFinder(ranker=ranker).find(_blind(slices[0]))
    soft = NoduleFinder(ranker=ranker, top=3).find(_blind(slices[0]))
    flat, owner, decide = judged([hard, soft])
    assert len(flat) == 4 and owner.tolist() == [0, 1, 1, 1]
    proba = np.random.default_rng(0).dirichlet(np.ones(2), size=4)
    weights = np.array([g.meta[WEIGHT_KEY] for g in flat[1:]])
    out = decide(proba)
    np.testing.assert_allclose(out, np.stack([proba[0], weights @ proba[1:]]))
    np.testing.assert_allclose(out.sum(1), 1.0)
    flat, owner, decide = judged([hard, hard])
    assert len(flat) == 2
    np.testing.assert_array_equal(decide(proba[:2]), proba[:2])


def test_fit_refuses_slices_without_a_candidate_on_their_nodule(surveyed):
    _, slices, probes = surveyed
    empty = [np.zeros_like(np.asarray(s.mask)) for s in slices[:5]]
    with pytest.raises(DataError, match="0 lie inside their nodule"):
        CandidateRanker().fit(probes[:5], empty)
    with pytest.raises(DataError, match="not fitted"):
        CandidateRanker().scores(probes[0])
