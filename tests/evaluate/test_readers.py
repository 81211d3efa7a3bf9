"""Reader-agreement metrics on a small example computed by hand (numbers in the comments)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ctnodule.evaluate.readers import evaluate_readers, parse_ratings, reader_agreement

# nodule A (patient P1): readers 2, 4; nodule B (patient P2): readers 1, 1, 2
RATINGS = [[2, 4], [1, 1, 2]]
PATIENTS = np.array(["P1", "P2"])
# the model: A -> class 4 (expected score 4); B -> 0.5/0.5 on 1 and 2 (arg-max 1, expected score 1.5)
PROBA = np.array([[0, 0, 0, 1.0, 0], [0.5, 0.5, 0, 0, 0]])


def test_reader_vs_reader_by_hand():
    got = reader_agreement(RATINGS, PATIENTS, n_boot=50)["reader_vs_reader"]
    # pairs (truth, other): (2,4) (4,2) | (1,1) (1,2) (1,1) (1,2) (2,1) (2,1)
    assert got["n_pairs"] == 8 and got["n_patients"] == 2
    assert got["exact"] == pytest.approx(2 / 8) and got["within_one"] == pytest.approx(6 / 8)
    # observed quadratic disagreement 12/16 over 8 pairs; expected from the marginals {1:4, 2:3, 4:1}: 120/8/16
    assert got["qwk"] == pytest.approx(1 - (12 / 16) / (120 / 8 / 16))
    # the one positive (truth 4) has score 2: above four 1s, tied with two 2s, below one 4
    assert got["roc_auc"] == pytest.approx((4 + 0.5 * 2) / 7)


def test_other_readers_consensus_vs_held_out_reader_by_hand():
    got = reader_agreement(RATINGS, PATIENTS, n_boot=50)["others_vs_reader"]
    # (held out, consensus of the others): (2,4) (4,2) | (1, median 1.5 -> 2) twice, (2, 1)
    assert got["n_pairs"] == 5
    assert got["exact"] == 0 and got["within_one"] == pytest.approx(3 / 5)
    # positive (4) scores 2 (the other's mean); negatives 4, 1.5, 1.5, 1
    assert got["roc_auc"] == pytest.approx(3 / 4)


def test_model_vs_each_reader_by_hand():
    got = reader_agreement(RATINGS, PATIENTS, PROBA, n_boot=50)["model_vs_reader"]
    # (reader, model arg-max): (2,4) (4,4) | (1,1) (1,1) (2,1)
    assert got["n_pairs"] == 5
    assert got["exact"] == pytest.approx(3 / 5) and got["within_one"] == pytest.approx(4 / 5)
    # positive (4) has expected score 4; negatives 4 (tie), 1.5, 1.5, 1.5
    assert got["roc_auc"] == pytest.approx(3.5 / 4)
    binary = reader_agreement(RATINGS, PATIENTS, np.array([[0.2, 0.8], [0.9, 0.1]]), n_boot=50)["model_vs_reader"]
    assert "qwk" not in binary and binary["roc_auc"] == pytest.approx(3.5 / 4)


def test_cis_bracket_the_point_values_and_are_reproducible():
    rng = np.random.default_rng(0)
    ratings = [list(rng.integers(1, 6, size=rng.integers(2, 5))) for _ in range(60)]
    patients = np.array([f"P{i // 2}" for i in range(60)])
    a = reader_agreement(ratings, patients, n_boot=200, seed=3)
    assert a == reader_agreement(ratings, patients, n_boot=200, seed=3)
    for block in a.values():
        for key in ("qwk", "exact", "within_one", "roc_auc"):
            lo, hi = block[f"{key}_ci"]
            assert lo <= block[key] <= hi and hi - lo > 0


def test_approximate_matches_are_counted_apart():
    frame = pd.DataFrame({"reader_ratings": ["2;4", "1;1;2", "3;3", np.nan], "patient_id": ["P1", "P2", "P3", "P4"],
                          "reader_match": ["unique", "unique", "nearest", "none"]})
    got = evaluate_readers(frame, np.vstack([PROBA, [[0, 0, 1.0, 0, 0]] * 2]), n_boot=20)
    assert got["n_nodules"] == {"unique": 2, "approximate": 1}
    assert got["unique"]["reader_vs_reader"]["n_pairs"] == 8 and got["approximate"]["model_vs_reader"]["exact"] == 1
    assert parse_ratings(frame["reader_ratings"])[3] == [] and evaluate_readers(frame.iloc[3:]) == {}
