"""The figures of a model card: confusion matrix, ROC curve(s), learning curves, reliability diagram.

Each function takes plain arrays (or the run's `history.csv` frame) and returns a matplotlib `Figure` drawn
with the Agg backend, so they work on a headless machine; `HtmlReport.figure` saves and closes them.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ctnodule.errors import ConfigError, DataError

HISTORY_COLUMNS = ("epoch", "fold", "train_loss", "val_loss", "train_acc", "val_acc", "lr")
NORMALIZE = ("true", "pred", "all", None)


def confusion_matrix_figure(
    y_true: np.ndarray, y_pred: np.ndarray, class_names: list[str], normalize: str | None = "true"
) -> Figure:
    """Confusion matrix (rows = truth, columns = prediction); each cell shows the count and, when
    `normalize` is "true" (default: recall per row), "pred" or "all", the colour-coded fraction."""
    if normalize not in NORMALIZE:
        raise ConfigError(f"normalize must be one of {NORMALIZE}, got {normalize!r}")
    k = len(class_names)
    counts = np.zeros((k, k))
    np.add.at(counts, (np.asarray(y_true, int), np.asarray(y_pred, int)), 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        if normalize == "true":
            shown = counts / counts.sum(axis=1, keepdims=True)
        elif normalize == "pred":
            shown = counts / counts.sum(axis=0, keepdims=True)
        elif normalize == "all":
            shown = counts / counts.sum()
        else:
            shown = counts
    shown = np.nan_to_num(shown)
    fig, ax = plt.subplots(figsize=(1.1 * k + 2.5, 1.0 * k + 2.0))
    image = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else max(shown.max(), 1))
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    for i in range(k):
        for j in range(k):
            text = f"{int(counts[i, j])}" + (f"\n{shown[i, j]:.2f}" if normalize else "")
            ax.text(j, i, text, ha="center", va="center", fontsize=9,
                    color="white" if shown[i, j] > 0.6 * (shown.max() or 1) else "black")
    ax.set(xticks=range(k), yticks=range(k), xticklabels=class_names, yticklabels=class_names,
           xlabel="predicted", ylabel="true",
           title="Confusion matrix" + (f" (normalised over {normalize})" if normalize else ""))
    plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
    fig.tight_layout()
    return fig


def roc_figure(y_true: np.ndarray, proba: np.ndarray, class_names: list[str]) -> Figure:
    """ROC curve of the malignant class (2 classes) or one-vs-rest curves per present class (more)."""
    from sklearn.metrics import roc_auc_score, roc_curve

    y = np.asarray(y_true, int)
    p = np.asarray(proba, float)
    if p.ndim == 1:
        p = np.column_stack([1 - p, p])
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="chance")
    targets = [1] if len(class_names) == 2 else range(len(class_names))
    for c in targets:
        hit = y == c
        if not 0 < hit.sum() < len(y):
            continue  # no curve without both positives and negatives
        fpr, tpr, _ = roc_curve(hit, p[:, c])
        name = class_names[c] if len(class_names) > 2 else f"{class_names[1]} vs {class_names[0]}"
        ax.plot(fpr, tpr, lw=1.8, label=f"{name} (AUC {roc_auc_score(hit, p[:, c]):.3f})")
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false positive rate", ylabel="true positive rate",
           title="ROC curve" if len(class_names) == 2 else "ROC curves (one vs rest)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def learning_curves_figure(history: pd.DataFrame) -> Figure:
    """Loss, accuracy and learning rate per epoch; one colour per fold, dashed = train, solid = val."""
    missing = [c for c in HISTORY_COLUMNS if c not in history.columns]
    if missing:
        raise DataError(f"history is missing column(s) {missing}; expected {list(HISTORY_COLUMNS)}")
    if history.empty:
        raise DataError("history has no rows: the training logged no epoch")
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    colours = plt.get_cmap("tab10")
    for i, (fold, part) in enumerate(history.sort_values(["fold", "epoch"]).groupby("fold", sort=True)):
        colour = colours(i % 10)
        for ax, metric in zip(axes[:2], ("loss", "acc")):
            ax.plot(part["epoch"], part[f"train_{metric}"], ls="--", color=colour, lw=1.2)
            ax.plot(part["epoch"], part[f"val_{metric}"], ls="-", color=colour, lw=1.6, label=f"fold {fold}")
        axes[2].plot(part["epoch"], part["lr"], color=colour, lw=1.4)
    axes[0].set(title="loss (dashed: train, solid: val)", xlabel="epoch", ylabel="loss")
    axes[1].set(title="accuracy (dashed: train, solid: val)", xlabel="epoch", ylabel="accuracy")
    axes[2].set(title="learning rate", xlabel="epoch", ylabel="lr")
    if (history["lr"] > 0).all():
        axes[2].set_yscale("log")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def calibration_figure(y_true: np.ndarray, proba: np.ndarray, class_names: list[str], bins: int = 10) -> Figure:
    """Reliability diagram with the expected calibration error (ECE).

    Binary: predicted malignant probability vs observed malignant rate. More classes: confidence of the
    predicted class vs its accuracy (top-label calibration). Below: how many samples fall in each bin.
    """
    y = np.asarray(y_true, int)
    p = np.asarray(proba, float)
    if p.ndim == 1:
        p = np.column_stack([1 - p, p])
    if len(class_names) == 2:
        conf, hit, what = p[:, 1], (y == 1).astype(float), f"P({class_names[1]})"
    else:
        conf, hit, what = p.max(axis=1), (p.argmax(axis=1) == y).astype(float), "confidence of predicted class"
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    count = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(which, conf, bins) / count
        observed = np.bincount(which, hit, bins) / count
    used = count > 0
    ece = float(np.sum(count[used] * np.abs(observed[used] - mean_conf[used])) / len(y))
    fig, (ax, ax_hist) = plt.subplots(2, 1, figsize=(5.5, 6.5), gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfectly calibrated")
    ax.plot(mean_conf[used], observed[used], marker="o", lw=1.8, label=f"model (ECE {ece:.3f})")
    ax.set(xlim=(0, 1), ylim=(0, 1), ylabel="observed frequency" if len(class_names) == 2 else "accuracy",
           title="Reliability diagram")
    ax.legend(loc="upper left", fontsize=8)
    bars = ax_hist.bar(edges[:-1], count, width=1.0 / bins, align="edge", color="steelblue", edgecolor="white")
    ax_hist.bar_label(bars, labels=[str(c) if c else "" for c in count], fontsize=7, padding=1)
    ax_hist.set_ylim(0, max(count.max(), 1) * 1.25)
    ax_hist.set(xlabel=what, ylabel="samples per bin")
    fig.tight_layout()
    return fig
