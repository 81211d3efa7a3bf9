"""`ctnodule explore DATA --out DIR`: the seed's data exploration (section 2.2) as one HTML report.

Class distribution (5-class and binary, per view), slice shapes (seen more than N times), Laplacian
variance per class and view with the "percentile -> slices above it" table (99 ... 90), nodule size per
class, sample grids per class and view in the lung window, and sklearn's balanced class weights for both
tasks. Tables are also written as CSV next to the page (`tables/`), figures as PNG (`figures/`).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ctnodule.atomic import atomic_dir, check_out_dir, final_path
from ctnodule.data import explore_figures as figs
from ctnodule.data.explore_stats import (
    class_distribution,
    class_weights_table,
    percentile_table,
    shape_distribution,
    slice_stats,
)
from ctnodule.data.manifest import read_manifest, synthetic_info
from ctnodule.errors import ConfigError
from ctnodule.pages import HtmlReport, shown_path, synthetic_banner

PAGE = "report.html"


def explore(
    data: str | Path,
    out: str | Path,
    *,
    min_shape_count: int = 5,
    samples_per_class: int = 8,
    seed: int = 0,
    progress: bool = False,
    index: Path | None = None,
    force: bool = False,
) -> Path:
    """Write the exploration report of the dataset at `data` into folder `out`; returns the HTML page.
    An existing non-empty `out` is refused unless `force`. `index`: the page this one belongs to (e.g. the
    `ctnodule run` index), linked at the top."""
    if min_shape_count < 0 or samples_per_class < 1:
        raise ConfigError("min_shape_count must be >= 0 and samples_per_class >= 1")
    data, out = Path(data), Path(out)
    frame = read_manifest(data)
    check_out_dir(out, force, "report folder")
    stats = slice_stats(data, frame, progress=progress)
    dist = class_distribution(frame)
    shape_table = shape_distribution(stats, min_shape_count)
    pct = percentile_table(stats)
    weights = class_weights_table(frame)

    rep = HtmlReport(f"Data exploration: {final_path(data).name}", subtitle=f"dataset {shown_path(data, out)}",
                     banner=synthetic_banner(synthetic_info(frame)), nav=[("index", index)] if index else ())
    rep.heading("Overview").table(_overview(frame, stats), float_format="{:.2f}")
    rep.heading("Class distribution")
    rep.figure(figs.class_distribution(dist), "class_distribution", "Samples per class, all and per view.")
    rep.table(_wide(dist, "n", "{:.0f}"), caption="Samples per class and view")
    rep.heading("Slice shapes")
    rep.figure(figs.shapes(stats, shape_table, min_shape_count), "slice_shapes",
               f"Left: shapes seen more than {min_shape_count} times; right: every shape, dot size = count.")
    rep.table(shape_table, caption=f"Shapes seen more than {min_shape_count} times", float_format="{:.0f}")
    rep.heading("Laplacian variance (sharpness / noise)")
    rep.figure(figs.laplacian(stats, pct), "laplacian_variance",
               "Variance of the 3x3 Laplacian of each slice in HU, per class and view (log scale).")
    rep.table(pct, caption="Percentile -> number of slices above it (what a noise filter there would drop)",
              float_format="{:.1f}")
    size_fig = figs.sizes(stats)
    if size_fig is not None:
        rep.heading("Nodule size")
        rep.figure(size_fig, "nodule_size", "Equivalent diameter of the nodule mask on the chosen slice.")
    rep.heading("Samples")
    for view in sorted(frame["view"].unique()):
        rep.figure(figs.sample_grid(data, frame, view, samples_per_class, seed), f"samples_{view}",
                   f"Random {view}-view samples per class (seed {seed}); nodule outlined in red.")
    rep.heading("Class weights")
    rep.paragraph("sklearn's balanced weights w_i = n_samples / (n_classes x n_i) "
                  "(sklearn.utils.class_weight.compute_class_weight), per view and task.")
    rep.table(_wide(weights, "weight", "{:.3f}"), caption="Class weights (blank: class absent)")
    # Built in a temporary folder that replaces `out` whole: a --force rerun leaves no stale figure or table
    # of the previous report (e.g. a view the dataset no longer has).
    with atomic_dir(out, force=force) as tmp:
        rep.save(tmp / PAGE)
        (tmp / "tables").mkdir()
        for name, table in (("class_distribution", dist), ("slice_shapes", shape_table),
                            ("laplacian_percentiles", pct), ("class_weights", weights), ("slice_stats", stats)):
            table.to_csv(tmp / "tables" / f"{name}.csv", index=False)
    return out / PAGE


def _overview(frame: pd.DataFrame, stats: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for view, part in [("all", frame), *sorted(frame.groupby("view"))]:
        s = stats if view == "all" else stats[stats["view"] == view]
        rows.append({
            "view": view, "samples": len(part), "patients": part["patient_id"].nunique(),
            "nodules": part[["patient_id", "nodule_id"]].drop_duplicates().shape[0],
            "sources": ", ".join(sorted(part["source"].astype(str).unique())),
            "median shape": f"{int(s['rows'].median())}x{int(s['cols'].median())}",
            "spacing mm (median)": float(part["spacing_row"].median()) if "spacing_row" in part else float("nan"),
        })
    return pd.DataFrame(rows)


def _wide(table: pd.DataFrame, value: str, fmt: str) -> pd.DataFrame:
    """view/task rows x class columns, the way the seed shows these tables (blank where not applicable)."""
    wide = table.pivot_table(index=["view", "task"], columns="class", values=value, sort=False, dropna=False)
    cells = wide.apply(lambda col: col.map(lambda v: "" if pd.isna(v) else fmt.format(v)))
    return cells.reset_index().rename_axis(columns=None)
