"""The VOI-to-pylidc reader matching on hand-made clusters (the real-data counts are in test_voi.py)."""

from __future__ import annotations

import pandas as pd
import pytest

from ctnodule.data.importers.voi_readers import Cluster, majority_vote, match_readers, match_row


def _row(z, lo, hi, n=4, vote=3, d=8.0):
    return pd.Series({"coordZ": z, "bboxLowZ": lo, "bboxHighZ": hi, "len_mal_details": n,
                      "Malignancy_value": vote, "diameter_mm": d})


CLUSTERS = [
    Cluster(-120.0, -110.0, -117.5, -112.5, 10.0, [3, 3, 2, 4]),
    Cluster(-115.0, -100.0, -112.5, -102.5, 20.0, [5, 5, 4]),
    Cluster(-60.0, -55.0, -60.0, -55.0, 6.0, [1, 2]),
]


def test_one_cluster_holding_the_centre_is_unique():
    assert match_row(_row(-57.0, -60, -55), CLUSTERS) == (2, "unique")


def test_overlapping_clusters_are_decided_by_consensus_z_extent():
    # -112 lies in clusters 0 and 1; the sheet's bbox equals cluster 1's consensus extent
    assert match_row(_row(-112.0, -112.5, -102.5, n=3, vote=5), CLUSTERS) == (1, "nearest")
    assert match_row(_row(-112.0, -117.5, -112.5), CLUSTERS) == (0, "nearest")
    # outside every cluster: the nearest extent still wins
    assert match_row(_row(-80.0, -62.5, -57.5, n=2, vote=1), CLUSTERS) == (2, "nearest")


def test_tie_in_z_readers_and_vote_is_ambiguous_and_decided_by_diameter():
    twins = [Cluster(-10, 0, -10, 0, 5.0, [2, 3, 3]), Cluster(-10, 0, -10, 0, 15.0, [3, 3, 4])]
    assert match_row(_row(-5, -10, 0, n=3, vote=3, d=14.0), twins) == (1, "ambiguous")
    assert match_row(_row(-5, -10, 0, n=3, vote=3, d=5.5), twins) == (0, "ambiguous")


def test_majority_vote_breaks_ties_to_the_lowest_rating():
    assert majority_vote([4, 5, 3, 2]) == 2 and majority_vote([3, 3, 4, 4]) == 3 and majority_vote([5, 5, 4]) == 5


def test_consensus_extent_needs_half_the_readers():
    import numpy as np

    from ctnodule.data.importers.lidc_annotations import Contour, ReaderAnnotation

    pts = np.array([[0, 0], [0, 4]])
    ann = lambda zs, m: ReaderAnnotation("r", {"malignancy": m}, [Contour(z, True, pts) for z in zs])
    c = Cluster.of([ann([0, 1, 2], 3), ann([1, 2], 4), ann([1, 2, 3, 4], 4)], spacing=0.5)
    assert (c.z_lo, c.z_hi, c.consensus_lo, c.consensus_hi) == (0, 4, 1, 2)
    assert c.ratings == [3, 4, 4] and c.diameter_mm == pytest.approx(2.0)


def test_a_sheet_without_series_uid_gets_no_ratings_and_says_why():
    sheet = pd.DataFrame({"patient_id": ["P1"], "nodule_id": ["1"], "Malignancy_value": [3]})
    out, summary = match_readers(sheet)
    assert out["reader_match"].tolist() == ["none"] and out["n_readers"].tolist() == [0]
    assert summary["counts"] == {"none": 1} and "seriesuid" in summary["why"]
