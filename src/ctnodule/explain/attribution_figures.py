"""Figures of the attributions (`ctnodule.models.attribution`): a waterfall per nodule, and the global view
of a model card — mean |attribution| per feature group and the dependence of the size group's contribution
on the nodule's diameter. Plain matplotlib on the Agg backend, returned as `Figure`s."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from ctnodule.models.attribution import Attribution

#: groups drawn in a waterfall; the rest are summed into one bar
SHOWN = 8


def waterfall_figure(attr: Attribution, i: int, reasons: str = "", title: str = "") -> Figure:
    """How nodule `i`'s output is built: from the training-mean nodule's output, one bar per group (largest
    |contribution| first, red = toward the explained class, blue = away), to its own output."""
    values = attr.values[i]
    order = np.argsort(-np.abs(values), kind="stable")
    shown, rest = order[:SHOWN], order[SHOWN:]
    labels = [attr.names[g] for g in shown] + ([f"{len(rest)} other groups"] if len(rest) else [])
    steps = list(values[shown]) + ([float(values[rest].sum())] if len(rest) else [])
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(steps) + 2.2))
    level = float(attr.base[i])
    for row, (label, step) in enumerate(zip(labels, steps)):
        ax.barh(row, step, left=level, color="#c0392b" if step >= 0 else "#2e6da4", height=0.6)
        ax.text(level + step + (0.03 if step >= 0 else -0.03), row, f"{step:+.2f}", va="center",
                ha="left" if step >= 0 else "right", fontsize=8)
        level += step
    ax.axvline(float(attr.base[i]), color="grey", ls="--", lw=1)
    ax.axvline(float(attr.output[i]), color="black", lw=1.2)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"{attr.space}\n(dashed: training-mean nodule {attr.base[i]:+.2f}; solid: this nodule "
                  f"{attr.output[i]:+.2f})", fontsize=8)
    ax.set_title(title or "Why this answer", fontsize=9)
    if reasons:
        fig.text(0.01, 0.005, reasons, fontsize=7, wrap=True)
    fig.tight_layout(rect=(0, 0.04 if reasons else 0, 1, 1))
    return fig


def importance_figure(attr: Attribution) -> Figure:
    """Mean |contribution| per group over the nodules of `attr`, largest on top."""
    mean_abs = np.abs(attr.values).mean(0)
    order = np.argsort(mean_abs)
    fig, ax = plt.subplots(figsize=(6.5, 0.32 * len(order) + 1.4))
    ax.barh(range(len(order)), mean_abs[order], color="steelblue")
    ax.set_yticks(range(len(order)), [attr.names[g] for g in order], fontsize=8)
    ax.set_xlabel(f"mean |contribution| ({attr.space})", fontsize=8)
    ax.set_title(f"What the model relies on ({len(attr.values)} nodules, {attr.method})", fontsize=9)
    fig.tight_layout()
    return fig


def dependence_figure(attr: Attribution, diameter_mm: np.ndarray, y: np.ndarray | None = None,
                      class_names: list[str] | None = None) -> Figure:
    """The size group's contribution against the nodule's diameter (mm, log axis), coloured by class."""
    g = next(k for k, members in enumerate(attr.groups) if "log_diameter" in members)
    fig, ax = plt.subplots(figsize=(6, 4.2))
    if y is None:
        ax.scatter(diameter_mm, attr.values[:, g], s=9, alpha=0.6)
    else:
        for c in np.unique(y):
            hit = y == c
            label = class_names[c] if class_names else str(c)
            ax.scatter(diameter_mm[hit], attr.values[hit, g], s=9, alpha=0.6, label=label)
        ax.legend(fontsize=7, title="true class", title_fontsize=7)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xscale("log")
    ax.set(xlabel="nodule diameter (mm, log scale)", ylabel=f"contribution of '{attr.names[g]}'",
           title="Dependence on nodule size")
    fig.tight_layout()
    return fig
