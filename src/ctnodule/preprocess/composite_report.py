"""The realism checks of a composite import: numbers for `import_report.json` and the `report.html` page.

- seam: mean |grad HU| (HU/mm) over the feathered band around each pasted nodule, against the same band
  around the same nodule in its own crop (real tissue around a real nodule) and in the bare background.
  A visible seam or halo would raise the composite's value above the real spread;
- nodule edge: mean |grad HU| on the mask's boundary pixels, composite vs the nodule's own crop (the
  blend must not blur or sharpen the nodule);
- HU histogram of nodule + margin before (the nodule's crop, resampled) and after placement;
- a gallery of composites beside the real full slices through annotated nodules.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ctnodule.data.manifest import synthetic_info
from ctnodule.pages import HtmlReport, synthetic_banner

if TYPE_CHECKING:
    from ctnodule.data.dataset import SliceDataset
    from ctnodule.preprocess.composite import Site

#: lung window for pictures
LEVEL, WIDTH = -600.0, 1500.0


def _spread(values: pd.Series) -> dict[str, float]:
    v = pd.to_numeric(values, errors="coerce").dropna().to_numpy()
    if v.size == 0:
        return {}
    q = np.percentile(v, [2.5, 25, 50, 75, 97.5])
    return {"n": int(v.size), "p2.5": round(q[0], 2), "q1": round(q[1], 2), "median": round(q[2], 2),
            "q3": round(q[3], 2), "p97.5": round(q[4], 2)}


def summarise(frame: pd.DataFrame, checks: list[dict[str, Any]]) -> dict[str, Any]:
    """Seam, edge and histogram numbers over all composites (and apart for juxta-pleural nodules)."""
    table = pd.DataFrame([{k: v for k, v in c.items() if not k.startswith("hist_")} for c in checks])
    real = _spread(table["seam_grad_nodule"])
    lo, hi = real.get("p2.5", np.nan), real.get("p97.5", np.nan)
    within = table["seam_grad"].between(lo, hi)
    seam = {"composite": _spread(table["seam_grad"]), "real_nodule_surroundings": real,
            "background_before": _spread(table["seam_grad_bg"]),
            "composite_within_real_95pct_range": round(float(within.mean()), 3),
            "composite_minus_background_median": round(float((table["seam_grad"] - table["seam_grad_bg"]).median()), 2)}
    for name, part in (("juxta_pleural", table[table["juxta_pleural"] == 1]),
                       ("not_juxta_pleural", table[table["juxta_pleural"] == 0])):
        seam[name] = {"n": len(part), "composite": _spread(part["seam_grad"]),
                      "real": _spread(part["seam_grad_nodule"])}
    edge = {"composite": _spread(table["edge_grad"]), "nodule_crop": _spread(table["edge_grad_nodule"]),
            "median_ratio": round(float((table["edge_grad"] / table["edge_grad_nodule"]).median()), 3)}
    before = np.sum([c["hist_before"] for c in checks], axis=0)
    after = np.sum([c["hist_after"] for c in checks], axis=0)
    from ctnodule.preprocess.composite import HU_BINS

    centres = (HU_BINS[:-1] + HU_BINS[1:]) / 2
    hist = {"bins_hu": HU_BINS.tolist(), "before": before.tolist(), "after": after.tolist(),
            "mean_before": round(float((centres * before).sum() / max(before.sum(), 1)), 1),
            "mean_after": round(float((centres * after).sum() / max(after.sum(), 1)), 1),
            "overlap": round(float(np.minimum(before / max(before.sum(), 1), after / max(after.sum(), 1)).sum()), 3),
            "mask_median_hu_abs_change": _spread((table["mask_hu_after"] - table["mask_hu_before"]).abs()),
            "level_shift_hu": _spread(frame["level_shift_hu"])}
    return {"n_juxta_pleural": int(table["juxta_pleural"].sum()), "seam_grad_hu_per_mm": seam,
            "edge_grad_hu_per_mm": edge, "histogram_nodule_and_margin": hist,
            "per_background_patient": frame["bg_patient_id"].value_counts().to_dict()}


def _window(hu: np.ndarray) -> np.ndarray:
    return np.clip((hu - (LEVEL - WIDTH / 2)) / WIDTH, 0, 1)


def write_report(folder: Path, frame: pd.DataFrame, checks: list[dict[str, Any]], sites: list[Site],
                 nodules: SliceDataset, details: dict[str, Any]) -> Path:
    """`folder/report.html` (+ figures/): the realism checks and the gallery."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    page = HtmlReport("Composite import: real nodules in real full slices",
                      f"{len(frame)} composites, {len(sites)} background slices of "
                      f"{len(details['backgrounds']['patients'])} patients",
                      banner=synthetic_banner(synthetic_info(frame)))
    seam = details["seam_grad_hu_per_mm"]
    rows = [{"where": name, **seam[key]} for name, key in (
        ("composite (pasted band)", "composite"), ("same band in the nodule's own crop (real)", "real_nodule_surroundings"),
        ("same band in the background before", "background_before"))]
    page.heading("Seam").paragraph(
        "Mean |grad HU| (HU/mm) over the feathered band around each nodule. A seam or halo would put the "
        f"composites above the real spread; {seam['composite_within_real_95pct_range']:.1%} of composites lie "
        "within the real nodules' 2.5-97.5 % range.").table(pd.DataFrame(rows))
    table = pd.DataFrame([{k: v for k, v in c.items() if not k.startswith("hist_")} for c in checks])
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.boxplot([table["seam_grad_nodule"].dropna(), table["seam_grad"].dropna(), table["seam_grad_bg"].dropna()],
               showfliers=False)
    ax.set_xticks([1, 2, 3], ["real (own crop)", "composite", "background"])
    ax.set_ylabel("|grad HU| in the band, HU/mm")
    page.figure(fig, "seam", "Seam statistic per nodule")
    hist = details["histogram_nodule_and_margin"]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    centres = np.array(hist["bins_hu"][:-1]) + 12.5
    for key, label in (("before", "nodule crop (before)"), ("after", "composite (after)")):
        counts = np.array(hist[key], float)
        ax.plot(centres, counts / max(counts.sum(), 1), label=label)
    ax.set_xlabel("HU")
    ax.set_ylabel("share of pixels")
    ax.legend()
    page.heading("HU of nodule + margin").paragraph(
        f"Mean {hist['mean_before']} HU before, {hist['mean_after']} HU after; histogram overlap "
        f"{hist['overlap']:.3f}. The margin is mixed with the background by design, the nodule keeps its HU "
        "(plus the parenchyma level shift).").figure(fig, "histogram", "HU histogram, all composites")
    page.heading("Gallery").paragraph(
        "Top: composites (lung window, the placed nodule outlined, with a 2x zoom). Bottom: real full slices "
        "through annotated nodules (readers' outlines).")
    page.figure(_gallery(folder, frame, sites), "gallery", "Composites beside real full slices")
    return page.save(folder / "report.html")


def _gallery(folder: Path, frame: pd.DataFrame, sites: list[Site], n: int = 6, per_row: int = 3):
    """Up to `n` composites (top rows) above up to `n` real slices with their own annotated nodules
    (bottom rows), each as the whole slice beside a zoom on the nodule; `per_row` pairs a row, so the
    figure stays readable at page width (13 in wide, titles at 10 pt)."""
    import matplotlib.pyplot as plt

    from ctnodule.data.io import read_nrrd

    picks = frame.iloc[np.linspace(0, len(frame) - 1, min(n, len(frame))).astype(int)]
    real = [s for s in sites if s.bg.avoid.any()]
    real = [real[i] for i in np.linspace(0, len(real) - 1, min(n, len(real))).astype(int)] if real else []
    block = -(-n // per_row)  # rows per group
    fig, axes = plt.subplots(2 * block, 2 * per_row, figsize=(2.2 * 2 * per_row, 2.6 * 2 * block))
    for ax in axes.ravel():
        ax.axis("off")

    def pair(group: int, j: int):
        row = group * block + j // per_row
        return axes[row, 2 * (j % per_row)], axes[row, 2 * (j % per_row) + 1]

    for j, row in enumerate(picks.itertuples(index=False)):
        hu, _ = read_nrrd(folder / row.path)
        mask, _ = read_nrrd(folder / row.mask_path)
        _show(*pair(0, j), hu, mask.astype(bool), f"composite, score {row.malignancy}\n"
              f"{row.nodule_patient_id} in {row.bg_patient_id}")
    for j, site in enumerate(real):
        _show(*pair(1, j), site.bg.hu, site.bg.avoid, f"real: {site.bg.name}")
    fig.tight_layout()
    return fig


def _show(ax_full, ax_zoom, hu: np.ndarray, mask: np.ndarray, title: str) -> None:
    ax_full.imshow(_window(hu), cmap="gray")
    ax_full.contour(mask, levels=[0.5], colors="r", linewidths=0.5)
    ax_full.set_title(title, fontsize=10)
    rows, cols = np.nonzero(mask)
    if rows.size:
        r, c = int(rows.mean()), int(cols.mean())
        half = max(32, int(1.5 * max(np.ptp(rows), np.ptp(cols))))
        win = (slice(max(r - half, 0), r + half), slice(max(c - half, 0), c + half))
        ax_zoom.imshow(_window(hu[win]), cmap="gray")
        ax_zoom.contour(mask[win], levels=[0.5], colors="r", linewidths=0.5, alpha=0.5)
