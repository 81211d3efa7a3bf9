"""Figures of the balance stage: image grids (per class, real beside synthetic) for HtmlReport pages."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def class_grid(images: np.ndarray, labels: np.ndarray, class_names: Sequence[str], per_class: int = 8,
               title: str = ""):
    """One row per class, `per_class` images each ((N, H, W) or (N, 1, H, W) in [0, 1])."""
    import matplotlib.pyplot as plt

    images = _grey(images)
    fig, axes = plt.subplots(len(class_names), per_class, figsize=(per_class * 0.9, len(class_names) * 0.95),
                             squeeze=False)
    for c, name in enumerate(class_names):
        picks = np.flatnonzero(labels == c)[:per_class]
        for j in range(per_class):
            ax = axes[c, j]
            ax.axis("off")
            if j < len(picks):
                ax.imshow(images[picks[j]], cmap="gray", vmin=0.0, vmax=1.0)
        axes[c, 0].text(-0.15, 0.5, name, transform=axes[c, 0].transAxes, ha="right", va="center", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def real_vs_synthetic(real: np.ndarray, real_y: np.ndarray, fake: np.ndarray, fake_y: np.ndarray,
                      class_names: Sequence[str], per_class: int = 6, seed: int = 0, generator: str = "cGAN"):
    """Per class: `per_class` random real images, a gap, then as many synthetic ones (titled by `generator`)."""
    import matplotlib.pyplot as plt

    real, fake = _grey(real), _grey(fake)
    rng = np.random.default_rng(seed)
    cols = 2 * per_class + 1
    fig, axes = plt.subplots(len(class_names), cols, figsize=(cols * 0.8, len(class_names) * 0.85),
                             squeeze=False)
    for c, name in enumerate(class_names):
        for part, (imgs, ys, offset) in enumerate(((real, real_y, 0), (fake, fake_y, per_class + 1))):
            idx = np.flatnonzero(ys == c)
            idx = rng.choice(idx, min(per_class, len(idx)), replace=False) if len(idx) else idx
            for j in range(per_class):
                ax = axes[c, offset + j]
                ax.axis("off")
                if j < len(idx):
                    ax.imshow(imgs[idx[j]], cmap="gray", vmin=0.0, vmax=1.0)
                if c == 0 and j == 0:
                    ax.set_title("real" if part == 0 else f"synthetic ({generator})", fontsize=8, loc="left")
        axes[c, per_class].axis("off")
        axes[c, 0].text(-0.15, 0.5, name, transform=axes[c, 0].transAxes, ha="right", va="center", fontsize=8)
    return fig


def _grey(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    return images[:, 0] if images.ndim == 4 else images


def nearest_real_gallery(fake: np.ndarray, fake_y: np.ndarray, real: np.ndarray, neighbours: np.ndarray,
                         distances: np.ndarray, class_names: Sequence[str], per_class: int = 2):
    """Per class, `per_class` synthetic samples (left, with their generated mask outlined when given as
    `fake` = (images, masks)) each followed by its nearest real images in feature space, with the distance:
    a copy would show a near-identical neighbour."""
    import matplotlib.pyplot as plt

    fake_images, fake_masks = fake if isinstance(fake, tuple) else (fake, None)
    fake_images, real = _grey(fake_images), _grey(real)
    k = neighbours.shape[1]
    picks = [i for c in range(len(class_names)) for i in np.flatnonzero(fake_y == c)[:per_class]]
    fig, axes = plt.subplots(len(picks), k + 1, figsize=((k + 1) * 0.95, len(picks) * 1.0), squeeze=False)
    for row, i in enumerate(picks):
        axes[row, 0].imshow(fake_images[i], cmap="gray", vmin=0.0, vmax=1.0)
        if fake_masks is not None and fake_masks[i].any():
            axes[row, 0].contour(fake_masks[i], levels=[0.5], colors="yellow", linewidths=0.6)
        axes[row, 0].set_title(f"synthetic {class_names[int(fake_y[i])]}", fontsize=6)
        for j in range(k):
            axes[row, j + 1].imshow(real[neighbours[i, j]], cmap="gray", vmin=0.0, vmax=1.0)
            axes[row, j + 1].set_title(f"real #{j + 1}: d={distances[i, j]:.1f}", fontsize=6)
        for ax in axes[row]:
            ax.axis("off")
    fig.tight_layout()
    return fig


def size_by_class(real_d: np.ndarray, real_y: np.ndarray, fake_d: np.ndarray, fake_y: np.ndarray,
                  class_names: Sequence[str]):
    """Box plots of the equivalent mask diameter (mm) per class, real beside synthetic."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.0))
    data, positions = [], []
    for c in range(len(class_names)):
        data += [real_d[real_y == c], fake_d[fake_y == c]]
        positions += [3 * c, 3 * c + 1]
    parts = ax.boxplot(data, positions=positions, widths=0.8, patch_artist=True, showfliers=False)
    for j, box in enumerate(parts["boxes"]):
        box.set_facecolor("#9ecae1" if j % 2 == 0 else "#fdae6b")
    ax.set_xticks([3 * c + 0.5 for c in range(len(class_names))], class_names, fontsize=8)
    ax.set_ylabel("mask diameter (mm)")
    ax.legend([parts["boxes"][0], parts["boxes"][1]], ["real", "synthetic"], fontsize=8)
    fig.tight_layout()
    return fig


def kid_by_class(table, title: str = "KID per class (figure only: ~100 samples a class)"):
    """Bar chart of a per-class KID table (columns class, KID, KID sd)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.0, 2.6))
    ax.bar(table["class"], table["KID"], yerr=table["KID sd"], color="#fdae6b", capsize=3)
    ax.axhline(0.0, color="black", linewidth=0.6)
    ax.set_ylabel("KID vs real of the class")
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return fig
