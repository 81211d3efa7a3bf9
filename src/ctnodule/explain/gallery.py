"""The explain report: a gallery grouped by true class with correct and wrong predictions side by side
(the seed's figures 27-30), and the localisation distribution against its chance level.

Each gallery figure is one true class: correct predictions above, wrong ones below, the most
confident first (confident mistakes are the ones worth looking at); each tile is the overlay with the
nodule outline, its predicted class, probability, heat share on the nodule and pointing-game hit, under a
colour bar that says what the colours mean. A side's title says how many it has and how many are shown.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ctnodule.pages import HtmlReport, synthetic_banner

#: heat-map colours (OpenCV's COLORMAP_JET in `overlay.colorize` is matplotlib's "jet")
CMAP = "jet"


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _tile_title(rec: dict[str, Any], class_names: Sequence[str]) -> str:
    mass = rec["cam_in_mask"]
    loc = "no mask" if mass is None else f"on nodule {mass:.2f}{' ✓' if rec['pointing_game'] else ''}"
    return f"{rec['sample_id']}\npred {class_names[rec['pred']]} ({rec['prob']:.2f})\n{loc}"


def class_figure(records: list[dict[str, Any]], tiles: dict[str, np.ndarray], true: int,
                 class_names: Sequence[str], per_side: int = 6, cols: int = 3):
    """Matplotlib figure for one true class: the correct predictions above the wrong ones, `per_side` tiles
    each (most confident first) in rows of `cols`, about 350 px a tile on the page, the colour bar below."""
    import matplotlib.pyplot as plt
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    mine = [r for r in records if r["true"] == true]
    groups = {"predicted correctly": [r for r in mine if r["pred"] == true],
              "predicted wrongly": [r for r in mine if r["pred"] != true]}
    shown = {side: sorted(group, key=lambda r: -r["prob"])[:per_side] for side, group in groups.items()}
    rows = {side: int(np.ceil(len(tiles_) / cols)) for side, tiles_ in shown.items()}
    heights = [3.9 * n if n else 0.5 for n in rows.values()]
    fig = plt.figure(figsize=(11, sum(heights) + 0.9), layout="constrained")
    body, legend = fig.subfigures(2, 1, height_ratios=[sum(heights), 0.9])
    for sub, (side, group), height in zip(body.subfigures(2, 1, height_ratios=heights), groups.items(), heights):
        more = f" ({len(shown[side])} most confident shown)" if len(shown[side]) < len(group) else ""
        title = f"true {class_names[true]}, {side}: {len(group)}{more}"
        sub.suptitle(title if group else f"{title} (none)", fontsize=11, fontweight="bold", x=0.01, ha="left")
        if not group:
            continue
        for ax, rec in zip(np.atleast_1d(sub.subplots(rows[side], cols, squeeze=False)).ravel(),
                           shown[side] + [None] * (rows[side] * cols - len(shown[side]))):
            ax.axis("off")
            if rec is not None:
                ax.imshow(tiles[rec["sample_id"]])
                ax.set_title(_tile_title(rec, class_names), fontsize=8)
    cax = legend.add_axes((0.1, 0.55, 0.8, 0.18))
    bar = legend.colorbar(ScalarMappable(Normalize(0, 1), CMAP), cax=cax, orientation="horizontal")
    bar.set_label("heat (share of the map's maximum); green outline: nodule mask, yellow: its bounding box",
                  fontsize=9)
    bar.ax.tick_params(labelsize=8)
    return fig


def distribution_figure(records: list[dict[str, Any]]):
    """Histogram of the heat share on the nodule (correct vs wrong) with the chance level, and the
    pointing-game hit rate beside the rate a random point would reach. Needs scored records (a nodule
    outline); `write_report` says so in a sentence when there are none."""
    import matplotlib.pyplot as plt

    scored = [r for r in records if r["cam_in_mask"] is not None]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6), gridspec_kw={"width_ratios": [2, 1]})
    bins = np.linspace(0, 1, 21)
    sides = {"all": scored, "correct": [r for r in scored if r["pred"] == r["true"]],
             "wrong": [r for r in scored if r["pred"] != r["true"]]}
    colours = {"all": "tab:blue", "correct": "tab:green", "wrong": "tab:red"}
    for label in ("correct", "wrong"):
        if sides[label]:
            ax1.hist([r["cam_in_mask"] for r in sides[label]], bins=bins, alpha=0.6, color=colours[label],
                     label=f"{label} (n={len(sides[label])})")
    chance = float(np.mean([r["area_fraction"] for r in scored]))
    ax1.axvline(chance, color="k", ls="--", lw=1, label=f"flat map (nodule area) {chance:.3f}")
    ax1.axvline(float(np.mean([r["cam_in_mask"] for r in scored])), color="tab:blue", lw=1.5, label="mean")
    present = [k for k, g in sides.items() if g]
    bars = ax2.bar([f"{k}\n(n={len(sides[k])})" for k in present],
                   [np.mean([r["pointing_game"] for r in sides[k]]) for k in present],
                   color=[colours[k] for k in present])
    ax2.bar_label(bars, fmt="%.2f", fontsize=8)  # a hit rate of 0 is a result, not an empty chart
    ax2.axhline(chance, color="k", ls="--", lw=1, label="random point")
    ax2.set_ylim(0, 1)
    ax2.set_ylabel("hit rate")
    ax2.legend(fontsize=8)
    ax1.set_xlabel("share of the heat map on the nodule")
    ax1.set_ylabel("samples")
    ax1.legend(fontsize=8)
    ax2.set_title("pointing game: maximum on the nodule", fontsize=10)
    fig.tight_layout()
    return fig


def group_table(records: list[dict[str, Any]], class_names: Sequence[str]) -> pd.DataFrame:
    rows = []
    for t in sorted({r["true"] for r in records}):
        for side in ("correct", "wrong"):
            g = [r for r in records if r["true"] == t and (r["pred"] == t) == (side == "correct")]
            s = [r for r in g if r["cam_in_mask"] is not None]
            rows.append({"true class": class_names[t], "prediction": side, "n": len(g),
                         "heat on nodule (mean)": np.mean([r["cam_in_mask"] for r in s]) if s else np.nan,
                         "pointing game": np.mean([r["pointing_game"] for r in s]) if s else np.nan,
                         "nodule area share": np.mean([r["area_fraction"] for r in s]) if s else np.nan})
    return pd.DataFrame(rows)


def write_report(path: Path, summary: dict[str, Any], records: list[dict[str, Any]],
                 tiles: dict[str, np.ndarray], class_names: Sequence[str], attr: Any = None,
                 nav: Sequence[tuple[str, Path]] = (), run: str | None = None, data: str | None = None) -> Path:
    """`report.html` (+ figures/) for one explain run; `attr`: the run's attributions of these samples;
    `run`/`data`: how the page names them (default: the summary's paths); `nav`: links back (the index, the
    run's model card)."""
    rep = HtmlReport(f"Explanations: {summary['method']} on {summary['view']} view ({summary['task']})",
                     f"run {run or summary['run']} · data {data or summary['data']} · layer "
                     f"{', '.join(summary['layers'])}"
                     + (f" ({summary['grid'][0]} x {summary['grid'][1]} cells)" if summary.get("grid") else ""),
                     banner=synthetic_banner(summary.get("data_synthetic")), nav=nav)
    rep.heading("Localisation")
    sources = ", ".join(f"{k}: {v}" for k, v in summary["region_source"].items())
    rep.paragraph(
        f"{summary['n']} samples explained, {summary['n_scored']} with a nodule outline ({sources}). "
        f"Mean share of the heat map on the nodule: {_fmt(summary['mean_cam_in_mask'])} (a flat map would "
        f"score the nodule's area share, {_fmt(summary['mean_area_fraction'], 4)}; mean lift over that: "
        f"{_fmt(summary['mean_lift'], 2)}x); pointing game (maximum "
        f"on the nodule, tolerance {summary['pointing_tolerance_px']} px): {_fmt(summary['pointing_game'])}. "
        + (f"Against the nodule grown by 3 mm: heat share {_fmt(summary['mean_cam_in_mask_3mm'])} (flat map "
           f"{_fmt(summary['mean_area_fraction_3mm'], 4)}), pointing game {_fmt(summary['pointing_game_3mm'])}. "
           if summary.get("mean_cam_in_mask_3mm") is not None else "")
        + (f"Share of the heat inside the lungs (the pipeline's lung mask): {_fmt(summary['mean_cam_in_lung'])} "
           f"(their area share: {_fmt(summary['mean_lung_area_fraction'])}). "
           if summary.get("mean_cam_in_lung") is not None else "")
        + "Heat maps are computed in the frame the network saw (after the run's own preprocessing); the "
        "nodule outline is moved with it.")
    grid = summary.get("grid")
    if grid and min(grid) < 4:
        hint = f" (e.g. --layer {summary['finer_layer']})" if summary.get("finer_layer") else ""
        rep.paragraph(f"Caution: the explained layer's map has only {grid[0]} x {grid[1]} cells, upsampled to "
                      "the image; it cannot point at a nodule inside the crop, so these scores sit near chance "
                      f"whatever the model does. Explain an earlier layer for a finer map{hint}.")
    if summary["n_scored"]:
        rep.figure(distribution_figure(records), "localization", "Heat share on the nodule and pointing game.")
    else:
        rep.paragraph("No chart of the heat on the nodule: none of the explained samples has a nodule outline "
                      "(mask or bounding box) to measure it against.")
    if records:
        rep.table(group_table(records, class_names), "By true class and correctness (—: no sample with a "
                  "nodule outline in that group).")
    _faithfulness_section(rep, summary.get("faithfulness") or {}, summary["method"])
    if attr is not None:
        _attribution_section(rep, attr, records, path.parent)
    rep.heading("Gallery")
    if not records:
        rep.paragraph("No sample was explained.")
    rep.paragraph("Per true class: the correct predictions, then the wrong ones, most confident first. Every "
                  "sample's full-size panels (slice in lung window, network input, overlay) are linked below.")
    for t in sorted({r["true"] for r in records}):
        rep.figure(class_figure(records, tiles, t, class_names), f"gallery_true_{t}",
                   f"True class {class_names[t]}.")
    if records:
        links = " · ".join(f'<a href="{html.escape(r["png"])}">{html.escape(r["sample_id"])}</a>' for r in records)
        rep.html(f'<p class="caption">Every explained sample, full size: {links}</p>')
    return rep.save(path)


def _faithfulness_section(rep: HtmlReport, faith: dict[str, Any], method: str) -> None:
    """Does each heat map show what the model uses? The deletion test, with its verdict in words."""
    from ctnodule.explain.faithfulness import N_RANDOM

    methods = [k for k, v in faith.items() if isinstance(v, dict)]
    if not methods:
        return
    rep.heading("Faithfulness: deletion test")
    for name in methods:
        f = faith[name]
        rep.paragraph(f"{name}: area between the random and the map's deletion curve {f['area_between_random']:+.3f} "
                      f"(95 % CI {f['ci'][0]:+.3f} to {f['ci'][1]:+.3f}; better than random on "
                      f"{100 * f['share_better_than_random']:.0f} % of {f['n']} maps). Verdict: {f['verdict']}.")
    rep.paragraph(f"How: the pixels of the network input are set to the image's mean, hottest first, in steps of "
                  f"10 % of the image; random order = the mean of {N_RANDOM} seeded random orders. The curve is the "
                  f"explained class's probability from the run's real head; the nodule descriptors stay as "
                  f"measured, so a model that decides from them moves little whatever pixels go. Occlusion: an 8 x "
                  f"8 px grey patch slid with stride 8 (captum), the probability drop it causes. {method} and "
                  "occlusion are compared on the same nodules.")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    x = 100 * np.asarray(faith["fractions"])
    ax.plot(x, faith["random_curve"], color="grey", ls="--", label="random pixels")
    for name in methods:
        ax.plot(x, faith[name]["curve"], marker="o", ms=3, label=name)
    ax.set(xlabel="pixels removed (%)", ylabel="probability of the explained class", title="Deletion curves (mean)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    rep.figure(fig, "deletion_curves", "Mean deletion curves: lower than random = the map found pixels that matter.")


def _attribution_section(rep: HtmlReport, attr: Any, records: list[dict[str, Any]], root: Path,
                         shown: int = 6) -> None:
    """Why each nodule got its answer: the global importance and the first waterfalls."""
    from ctnodule.explain.attribution_figures import importance_figure

    rep.heading("Why this answer: feature attributions")
    rep.paragraph(f"Contributions ({attr.method}) in units of the {attr.space}, from the model's output for the "
                  "training-mean nodule to each nodule's own; they add up exactly. The image principal components "
                  "form one group; correlated descriptors share one group. Each sample's waterfall is in "
                  "waterfalls/; its top reasons are in localization.json and attributions.csv.")
    rep.figure(importance_figure(attr), "attribution_importance", "Mean |contribution| per feature group.")
    for rec in records[:shown]:
        if rec.get("waterfall"):
            rep.figure(root / rec["waterfall"], f"waterfall_{rec['sample_id']}", rec["reasons"])
