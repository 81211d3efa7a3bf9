"""The preprocess report: what the pipeline did to the data, in figures (the seed's figures 5, 7, 11, 12).

Samples per class before/after the noise filter, the Laplacian-variance distribution with the learned
threshold, the noisiest slices, before/after pairs per view and lung masks overlaid on full slices.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ctnodule.atomic import final_path
from ctnodule.data.dataset import SliceDataset
from ctnodule.data.manifest import synthetic_info
from ctnodule.pages import HtmlReport, shown_path, synthetic_banner
from ctnodule.preprocess.base import LUNG_MASK, centre_plane
from ctnodule.preprocess.pipeline import Pipeline

N_SHOW = 8


def write_report(folder: Path, ds: SliceDataset, pipes: dict[str, Pipeline], decisions: pd.DataFrame,
                 kept: pd.DataFrame, fit_on_all: bool, index: Path | None = None) -> Path:
    """Write `folder/report.html` (+ figures/); `index`: the page this one belongs to, linked at the top."""
    rep = HtmlReport("Preprocessing", f"{shown_path(ds.root, folder)} -> {final_path(folder).name}: "
                     f"{len(kept)} of {len(ds)} samples kept", banner=synthetic_banner(synthetic_info(ds.frame)),
                     nav=[("index", index)] if index else ())
    if fit_on_all:
        rep.paragraph("The learning steps (noise threshold, learned size) were fitted on ALL samples of this "
                      "dataset. For honest evaluation fit on the training split only (--fit-on).")
    rep.heading("Samples per class, before and after the noise filter")
    counts = _class_counts(ds.frame, kept)
    rep.table(counts, caption="malignancy 1-5 per view", float_format="{:.0f}")
    rep.figure(_class_figure(counts), "classes", "samples per malignancy class, before and after")
    for view, pipe in pipes.items():
        idx = np.flatnonzero(ds.frame["view"].to_numpy() == view)
        dec = decisions.set_index("sample_id").loc[ds.frame["sample_id"].astype(str).to_numpy()[idx]]
        rep.heading(f"{view} view  (pipeline {pipe.hash})")
        rep.paragraph(" -> ".join(f"{s.name}({', '.join(f'{k}={v}' for k, v in s.get_params().items())})"
                                  for s in pipe.steps))
        rep.figure(_variance_figure(dec, pipe), f"{view}_variance",
                   "Laplacian variance per slice; dashed: threshold learned on the training samples")
        noisiest = idx[np.argsort(-dec["laplacian_variance"].to_numpy())[:N_SHOW]]
        rep.figure(_grid(ds, pipe, noisiest, processed_only=True), f"{view}_noisiest",
                   "the noisiest slices (processed), with their Laplacian variance")
        rng = np.random.default_rng(0)
        some = rng.choice(idx, size=min(N_SHOW // 2, len(idx)), replace=False)
        rep.figure(_grid(ds, pipe, some, processed_only=False), f"{view}_before_after",
                   "before (HU, lung window) and after preprocessing; red: lung mask, yellow: nodule mask")
    return rep.save(folder / "report.html")


def _class_counts(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for view in sorted(before["view"].unique()):
        for label, frame in (("before", before), ("after", after)):
            vc = frame.loc[frame["view"] == view, "malignancy"].astype(int).value_counts()
            rows.append({"view": view, "stage": label, **{str(m): int(vc.get(m, 0)) for m in range(1, 6)}})
    return pd.DataFrame(rows)


def _class_figure(counts: pd.DataFrame):
    views = counts["view"].unique()
    fig, axes = plt.subplots(1, len(views), figsize=(5 * len(views), 3.2), squeeze=False)
    for ax, view in zip(axes[0], views):
        sub = counts[counts["view"] == view].set_index("stage")[[str(m) for m in range(1, 6)]]
        x = np.arange(5)
        ax.bar(x - 0.2, sub.loc["before"], 0.4, label="before")
        ax.bar(x + 0.2, sub.loc["after"], 0.4, label="after")
        ax.set_xticks(x, [str(m) for m in range(1, 6)])
        ax.set_xlabel("malignancy")
        ax.set_title(f"{view} view")
        ax.legend()
    return fig


def _variance_figure(dec: pd.DataFrame, pipe: Pipeline):
    fig, ax = plt.subplots(figsize=(6, 3))
    var = dec["laplacian_variance"].to_numpy(dtype=float)
    ax.hist(var[np.isfinite(var)], bins=40, color="tab:blue")
    for step in pipe.steps:
        if hasattr(step, "threshold_"):
            ax.axvline(step.threshold_, color="k", ls="--", label=f"threshold {step.threshold_:.4g}")
            ax.legend()
    ax.set_xlabel("Laplacian variance")
    ax.set_ylabel("slices")
    return fig


def _grid(ds: SliceDataset, pipe: Pipeline, idx: np.ndarray, processed_only: bool):
    cols = len(idx) if processed_only else 2 * len(idx)
    fig, axes = plt.subplots(1, max(cols, 1), figsize=(2.2 * max(cols, 1), 2.6), squeeze=False)
    ax_iter = iter(axes[0])
    for i in idx:
        s = ds[int(i)]
        out = pipe.transform(s)
        if not processed_only:
            ax = next(ax_iter)
            ax.imshow(np.clip(centre_plane(s.array), -1350, 150), cmap="gray")
            ax.set_title(f"{s.meta['sample_id']}\nHU", fontsize=7)
        ax = next(ax_iter)
        ax.imshow(centre_plane(out.array), cmap="gray", vmin=0, vmax=1)
        if out.meta.get(LUNG_MASK) is not None:
            ax.contour(out.meta[LUNG_MASK], [0.5], colors="r", linewidths=0.6)
        if out.mask is not None and out.mask.any():
            ax.contour(out.mask, [0.5], colors="y", linewidths=0.6)
        ax.set_title(f"{s.meta['sample_id']}\nvar {out.meta.get('laplacian_variance', np.nan):.3g}", fontsize=7)
    for ax in axes[0]:
        ax.axis("off")
    return fig
