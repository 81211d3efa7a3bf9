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
                      class_names: Sequence[str], per_class: int = 6, seed: int = 0):
    """Per class: `per_class` random real images, a gap, then as many synthetic ones."""
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
                    ax.set_title("real" if part == 0 else "synthetic (cGAN)", fontsize=8, loc="left")
        axes[c, per_class].axis("off")
        axes[c, 0].text(-0.15, 0.5, name, transform=axes[c, 0].transAxes, ha="right", va="center", fontsize=8)
    return fig


def _grey(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    return images[:, 0] if images.ndim == 4 else images
