"""Figures of the exploration report (matplotlib `Figure`s, no pyplot state, so safe in any process)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ctnodule.data.io import read_nrrd
from ctnodule.vocab import CLASS_NAMES

#: lung window (level -600, width 1500 HU), the usual way to look at nodules
LUNG_WINDOW = (-1350.0, 150.0)
#: sample-grid thumbnails are at most this many pixels on their longer side
DISPLAY_PX = 192
_COLOURS = ["#4c9f70", "#8cc084", "#c9c46a", "#e08a4b", "#c4483e"]


def class_distribution(dist: pd.DataFrame) -> Figure:
    views = list(dict.fromkeys(dist["view"]))
    fig = Figure(figsize=(9, 2.6 * len(views)), layout="constrained")
    axes = fig.subplots(len(views), 2, squeeze=False)
    for row, view in enumerate(views):
        for col, task in enumerate(("multiclass", "binary")):
            part = dist[(dist["view"] == view) & (dist["task"] == task)]
            colours = _COLOURS if task == "multiclass" else [_COLOURS[1], _COLOURS[4]]
            ax = axes[row, col]
            bars = ax.bar(part["class"], part["n"], color=colours)
            ax.bar_label(bars, labels=[f"{n} ({s:.0%})" for n, s in zip(part["n"], part["share"])], fontsize=8)
            ax.set_title(f"{view}: {'malignancy 1-5' if task == 'multiclass' else 'binary'}", fontsize=10)
            ax.set_ylabel("samples")
            ax.margins(y=0.18)
    return fig


def shapes(stats: pd.DataFrame, table: pd.DataFrame, min_count: int) -> Figure:
    views = sorted(stats["view"].unique())
    fig = Figure(figsize=(11, 3.2 * len(views)), layout="constrained")
    axes = fig.subplots(len(views), 2, squeeze=False)
    for row, view in enumerate(views):
        part = table[table["view"] == view].head(25)
        ax = axes[row, 0]
        if part.empty:
            ax.text(0.5, 0.5, f"no shape seen more than {min_count} times", ha="center", va="center")
        else:
            ax.bar(part["shape"], part["n"], color="#5a7fa8")
            ax.tick_params(axis="x", rotation=60, labelsize=7)
        ax.set_title(f"{view}: shapes seen > {min_count} times (rows x cols)", fontsize=10)
        s = stats[stats["view"] == view]
        counts = s.groupby(["rows", "cols"]).size().reset_index(name="n")
        ax = axes[row, 1]
        ax.scatter(counts["cols"], counts["rows"], s=8 + 60 * counts["n"] / counts["n"].max(), alpha=0.6)
        ax.set_xlabel("columns (px)")
        ax.set_ylabel("rows (px)")
        ax.set_title(f"{view}: all {len(s)} slices, {len(counts)} distinct shapes", fontsize=10)
    return fig


def laplacian(stats: pd.DataFrame, percentiles: pd.DataFrame) -> Figure:
    """Per view: log10 Laplacian variance per class (box) and its histogram with the 90/95/99th percentiles."""
    views = sorted(stats["view"].unique())
    fig = Figure(figsize=(11, 3.2 * len(views)), layout="constrained")
    axes = fig.subplots(len(views), 2, squeeze=False)
    for row, view in enumerate(views):
        s = stats[stats["view"] == view]
        logv = np.log10(s["laplacian_var"].clip(lower=1e-6))
        data = [logv[s["malignancy"] == m] for m in range(1, 6)]
        ax = axes[row, 0]
        present = [i for i, d in enumerate(data) if len(d)]
        box = ax.boxplot([data[i] for i in present], tick_labels=[str(i + 1) for i in present], patch_artist=True)
        for patch, i in zip(box["boxes"], present):
            patch.set_facecolor(_COLOURS[i])
        ax.set_xlabel("malignancy")
        ax.set_ylabel("log10 Laplacian variance (HU²)")
        ax.set_title(f"{view}: Laplacian variance per class", fontsize=10)
        ax = axes[row, 1]
        ax.hist(logv, bins=40, color="#5a7fa8")
        pv = percentiles[percentiles["view"] == view].set_index("percentile")["laplacian_var"]
        for p, style in ((90, ":"), (95, "--"), (99, "-")):
            if p in pv.index:
                ax.axvline(np.log10(max(pv[p], 1e-6)), color="#c4483e", ls=style, label=f"P{p}")
        ax.legend(fontsize=8)
        ax.set_xlabel("log10 Laplacian variance (HU²)")
        ax.set_title(f"{view}: distribution ({len(s)} slices)", fontsize=10)
    return fig


def sizes(stats: pd.DataFrame) -> Figure | None:
    """Mask-measured equivalent diameter per class and view (physical size: the strongest signal)."""
    if "mask_diameter_mm" not in stats or stats["mask_diameter_mm"].isna().all():
        return None
    views = sorted(stats["view"].unique())
    fig = Figure(figsize=(4.2 * len(views), 3.2), layout="constrained")
    axes = fig.subplots(1, len(views), squeeze=False)[0]
    for ax, view in zip(axes, views):
        s = stats[(stats["view"] == view) & stats["mask_diameter_mm"].notna()]
        present = [m for m in range(1, 6) if (s["malignancy"] == m).any()]
        box = ax.boxplot([s.loc[s["malignancy"] == m, "mask_diameter_mm"] for m in present],
                         tick_labels=[str(m) for m in present], patch_artist=True)
        for patch, m in zip(box["boxes"], present):
            patch.set_facecolor(_COLOURS[m - 1])
        ax.set_xlabel("malignancy")
        ax.set_ylabel("mask equivalent diameter (mm)")
        ax.set_title(f"{view}: nodule size per class", fontsize=10)
    return fig


def sample_grid(root: Path, frame: pd.DataFrame, view: str, per_class: int, seed: int) -> Figure:
    """`per_class` random samples of each class in the lung window; the nodule outlined (mask) or boxed."""
    rng = np.random.default_rng(seed)
    part = frame[frame["view"] == view]
    fig = Figure(figsize=(1.6 * per_class, 1.75 * 5), layout="constrained")
    axes = fig.subplots(5, per_class, squeeze=False)
    for m in range(1, 6):
        rows = part[part["malignancy"] == m]
        pick = rows.iloc[np.sort(rng.choice(len(rows), size=min(per_class, len(rows)), replace=False))]
        for j in range(per_class):
            ax = axes[m - 1, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(f"{m} ({CLASS_NAMES['binary'][int(m >= 4)].split()[0]})", fontsize=9)
            if j >= len(pick):
                ax.set_facecolor("#eeeeee")
                if j == 0:
                    ax.text(0.5, 0.5, "no samples", ha="center", va="center", fontsize=7, transform=ax.transAxes)
                continue
            r = pick.iloc[j]
            array, _ = read_nrrd(root / r["path"])
            step = -(-max(array.shape) // DISPLAY_PX)  # thumbnails: drawing 512x512 slices is the slow part
            ax.imshow(array[::step, ::step], cmap="gray", vmin=LUNG_WINDOW[0], vmax=LUNG_WINDOW[1],
                      interpolation="nearest")
            _outline(ax, root, r, view, step)
            ax.set_title(f"{r['patient_id']} {array.shape[0]}x{array.shape[1]}", fontsize=5)
    fig.suptitle(f"{view} view, lung window (L -600 / W 1500 HU)", fontsize=10)
    return fig


def _outline(ax, root: Path, row: pd.Series, view: str, step: int) -> None:
    """Box the nodule in a full slice (a contour would be too small to see), outline it in a crop."""
    if view == "full" and pd.notna(row.get("bbox_r0")):
        from matplotlib.patches import Rectangle

        r0, c0, r1, c1 = (float(row[k]) / step for k in ("bbox_r0", "bbox_c0", "bbox_r1", "bbox_c1"))
        pad = 6 / step
        ax.add_patch(Rectangle((c0 - pad, r0 - pad), c1 - c0 + 2 * pad, r1 - r0 + 2 * pad, fill=False,
                               ec="#ff4040", lw=0.8))
    elif isinstance(row.get("mask_path"), str) and row["mask_path"]:
        mask, _ = read_nrrd(root / row["mask_path"])
        mask = mask[::step, ::step]
        if mask.any():
            ax.contour(mask, levels=[0.5], colors="#ff4040", linewidths=0.5)
