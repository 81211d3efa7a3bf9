"""Why this answer: additive attributions of a scikit-learn head's output, per feature group, in words.

The output explained is a logit: binary runs explain the log-odds of "malignant"; 5-class runs explain the
PREDICTED class's multinomial score (the logit the arg-max picked; with the L2 penalty the scores of the five
classes sum to about zero, so it reads as that class's log-probability against the average class) — the
expected rating is not additive in the features, the winning logit is. Contributions are relative to the
model's output at the training-mean nodule (every standardised input 0), so they sum to
output - baseline.

- Logistic regression (the default head): exact. With z the standardised inputs the head's classifier sees
  (4 image principal components + the nodule descriptors), contribution_j = coef_j * z_j. A Platt-calibrated
  binary head rescales its logit (p = sigmoid(-(a f + b))), so the contributions are multiplied by -a and
  explain the calibrated log-odds exactly; an isotonic or multiclass calibration is not linear, so there
  they explain the uncalibrated score the calibrator reads (the `space` field says which).
- Any other scikit-learn head (SVM): Kernel SHAP from the `shap` package over the same groups, with the
  training-mean nodule as the one background point (baseline Shapley values), on the logit of the head's
  probability (a head calibrated by `calibration:` is explained before its calibration). For a linear head
  it reproduces the exact values.

Groups: the image principal components are ONE group ("image"); descriptors whose absolute Spearman
correlation on the training rows is >= 0.8 are merged (average-linkage clustering on 1 - |rho|), so two
measurements of one property (diameter and major axis) do not split its credit. `feature_groups` is run at
training time on the training rows and stored in the model.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ctnodule.errors import ConfigError
from ctnodule.models.calibration import split_calibrated

if TYPE_CHECKING:
    import pandas as pd

IMAGE = "image"
CORRELATED = 0.8

# descriptor -> (words, format of its raw value); raw values are those of models.descriptors.describe
_MM = lambda v: f"{math.exp(v):.0f} mm"
_HU = lambda v: f"{v * 1000:.0f} HU"
_PCT = lambda v: f"{100 * v:.0f} %"
_NUM = lambda v: f"{v:.2f}"
WORDS = {
    "log_diameter": ("diameter", _MM), "log_major": ("major axis", _MM), "log_minor": ("minor axis", _MM),
    "compactness": ("compactness", _NUM), "solidity": ("solidity", _NUM), "eccentricity": ("eccentricity", _NUM),
    "extent": ("extent", _NUM), "radial_cv": ("margin irregularity", _NUM),
    "hu_p10": ("10th-percentile density", _HU), "hu_p50": ("median density", _HU),
    "hu_p90": ("90th-percentile density", _HU), "hu_std": ("density spread", _HU),
    "frac_calcified": ("calcified share", _PCT), "frac_ground_glass": ("ground-glass share", _PCT),
    "frac_solid": ("solid share", _PCT), "rim_hu_mean": ("rim density", _HU),
    "rim_frac_soft": ("soft tissue in the rim", _PCT), "contrast": ("contrast to the rim", _HU),
    "grad_inside": ("internal texture", lambda v: f"{v * 1000:.0f} HU/mm"),
    "grad_boundary": ("margin sharpness", lambda v: f"{v * 1000:.0f} HU/mm"),
}


@dataclasses.dataclass
class Attribution:
    """Attributions of N predictions over G groups; `base + values.sum(1) == output`."""

    groups: list[list[str]]   # members of each group (["image"] for the image part)
    values: np.ndarray        # (N, G) contributions in logit units
    base: np.ndarray          # (N,) output at the training-mean nodule
    output: np.ndarray        # (N,) the explained output
    target: np.ndarray        # (N,) class whose logit is explained
    space: str                # what the output is, in words
    method: str               # "exact linear" or "kernel shap"

    @property
    def names(self) -> list[str]:
        return [group_name(g) for g in self.groups]


def feature_groups(table: np.ndarray, names: Sequence[str], threshold: float = CORRELATED) -> list[list[str]]:
    """Descriptor groups: average-linkage clusters of 1 - |Spearman rho| on training rows `table` (N, D),
    cut so that merged descriptors correlate at about >= `threshold`; in `names` order."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform
    from scipy.stats import spearmanr

    names = list(names)
    if len(names) < 2:
        return [[n] for n in names]
    table = np.asarray(table, dtype=float)
    rho = np.atleast_2d(spearmanr(table, nan_policy="omit").statistic)
    distance = 1.0 - np.abs(np.nan_to_num(rho, nan=0.0))
    np.fill_diagonal(distance, 0.0)
    labels = fcluster(linkage(squareform(np.clip(distance, 0, None), checks=False), "average"),
                      t=1.0 - threshold, criterion="distance")
    order = {lab: i for i, lab in enumerate(dict.fromkeys(labels))}
    out: list[list[str]] = [[] for _ in order]
    for name, lab in zip(names, labels):
        out[order[lab]].append(name)
    return out


def group_name(members: Sequence[str]) -> str:
    """'image', 'diameter' or 'diameter (+2 correlated)'."""
    if list(members) == [IMAGE]:
        return "image (CNN components)"
    first = WORDS.get(members[0], (members[0], None))[0]
    return first if len(members) == 1 else f"{first} (+{len(members) - 1} correlated)"


def attribute(sk_head, X: np.ndarray, tabular: Sequence[str], groups: Sequence[Sequence[str]] | None = None,
              target: np.ndarray | None = None, method: str = "auto") -> Attribution:
    """Attributions of head `sk_head` on its input rows `X` ([image features | tabular `tabular` names]).

    `groups`: descriptor groups from `feature_groups` (None: each descriptor alone). `target`: class per row
    (default: binary -> malignant, more classes -> the predicted one). `method`: "auto" (exact for logistic
    regression, shap otherwise), "exact" or "shap".
    """
    pipeline, calibrators = split_calibrated(sk_head.model_)
    pre, clf = pipeline[:-1], pipeline[-1]
    z = pre.transform(np.asarray(X, dtype=np.float64))
    n_tab = len(tabular)
    groups = [list(g) for g in (groups or [[n] for n in tabular])]
    columns = _column_groups(z.shape[1], list(tabular), groups)
    all_groups = ([[IMAGE]] if z.shape[1] > n_tab else []) + groups
    binary = len(sk_head.classes_) == 2
    if target is None:
        target = np.ones(len(X), int) if binary else sk_head.model_.predict_proba(X).argmax(1)
    target = np.asarray(target, int)
    linear = hasattr(clf, "coef_")
    if method == "auto":
        method = "exact" if linear else "shap"
    if method == "exact":
        if not linear:
            raise ConfigError(f"exact attributions need a linear head; {type(clf).__name__} needs method='shap'")
        return _linear(clf, calibrators, z, columns, all_groups, target, binary)
    if method == "shap":
        return _kernel_shap(clf, calibrators, z, columns, all_groups, target, binary)
    raise ConfigError(f"unknown attribution method {method!r}; expected auto, exact or shap")


def _column_groups(n_columns: int, tabular: list[str], groups: list[list[str]]) -> np.ndarray:
    """Group index of each column the classifier sees: image columns first (group 0 when present)."""
    n_image = n_columns - len(tabular)
    where = {name: i for i, g in enumerate(groups) for name in g}
    missing = [n for n in tabular if n not in where]
    if missing:
        raise ConfigError(f"descriptor(s) {missing} belong to no attribution group")
    offset = 1 if n_image > 0 else 0
    return np.array([0] * n_image + [where[n] + offset for n in tabular])


def _linear(clf, calibrators, z: np.ndarray, columns: np.ndarray, groups: list[list[str]], target: np.ndarray,
            binary: bool) -> Attribution:
    coef = clf.coef_[0][None, :].repeat(len(z), 0) if binary else clf.coef_[target]
    base = np.full(len(z), clf.intercept_[0]) if binary else clf.intercept_[target]
    per_column = coef * z
    space = "log-odds of malignant" if binary else "score (multinomial logit) of the predicted class"
    if calibrators is not None:
        scale, shift = _platt(calibrators, binary)
        if scale is None:
            space += " before calibration (the calibration is not linear)"
        else:
            per_column, base = per_column * scale, base * scale + shift
            space += " after Platt calibration"
    values = np.zeros((len(z), len(groups)))
    np.add.at(values.T, columns, per_column.T)
    return Attribution(groups, values, base, base + values.sum(1), target, space, "exact linear")


def _platt(calibrators, binary: bool) -> tuple[float | None, float]:
    """(scale, shift) turning the decision value into the calibrated log-odds, or (None, 0) if non-linear."""
    cal = calibrators[0]
    if not binary or not hasattr(cal, "a_"):
        return None, 0.0
    return -float(cal.a_), -float(cal.b_)


def _kernel_shap(final, calibrators, z: np.ndarray, columns: np.ndarray, groups: list[list[str]],
                 target: np.ndarray, binary: bool) -> Attribution:
    """Grouped baseline Shapley values by Kernel SHAP: a coalition keeps its groups' standardised inputs and
    sets the others to the training mean (0)."""
    import shap

    def logit(rows: np.ndarray, c: int) -> np.ndarray:
        p = np.clip(final.predict_proba(rows), 1e-12, 1.0)
        if binary:
            return np.log(p[:, 1]) - np.log(p[:, 0])
        return np.log(p[:, c]) - np.log(p).mean(1)

    G = len(groups)
    values, base, output = np.zeros((len(z), G)), np.zeros(len(z)), np.zeros(len(z))
    for i, (row, c) in enumerate(zip(z, target)):
        def coalition(mask: np.ndarray, row=row, c=c) -> np.ndarray:
            return logit(mask[:, columns] * row[None, :], c)

        explainer = shap.KernelExplainer(coalition, np.zeros((1, G)))
        values[i] = explainer.shap_values(np.ones((1, G)), nsamples=min(2 ** G + 2, 2048), silent=True)[0]
        base[i] = float(np.ravel(explainer.expected_value)[0])
        output[i] = coalition(np.ones((1, G)))[0]
    space = "log-odds of malignant" if binary else "log-probability of the predicted class against the average class"
    if calibrators is not None:
        space += " before calibration"
    return Attribution(groups, values, base, output, target, space, "kernel shap")


def to_frame(attr: Attribution) -> pd.DataFrame:
    """One row per prediction: target, base, output, space, method, `contrib:<member|member...>` per group."""
    import pandas as pd

    frame = pd.DataFrame({"target": attr.target, "base": attr.base, "output": attr.output, "space": attr.space,
                          "method": attr.method})
    for g, members in enumerate(attr.groups):
        frame["contrib:" + "|".join(members)] = attr.values[:, g]
    return frame


def from_frame(frame: pd.DataFrame) -> Attribution:
    """The `Attribution` a `to_frame` table holds (extra columns are ignored)."""
    cols = [c for c in frame.columns if c.startswith("contrib:")]
    return Attribution([c[len("contrib:"):].split("|") for c in cols], frame[cols].to_numpy(float),
                       frame["base"].to_numpy(float), frame["output"].to_numpy(float), frame["target"].to_numpy(int),
                       str(frame["space"].iloc[0]), str(frame["method"].iloc[0]))


def reasons(attr: Attribution, raw: np.ndarray, tabular: Sequence[str], class_names: Sequence[str],
            top: int = 3) -> list[str]:
    """Per prediction, its `top` groups by |contribution| in words, e.g.
    'diameter 23 mm (+2 correlated): +1.8 toward malignant'. `raw`: the descriptors as measured (N, D)."""
    col = {n: j for j, n in enumerate(tabular)}
    out = []
    for i in range(len(attr.values)):
        parts = []
        for g in np.argsort(-np.abs(attr.values[i]), kind="stable")[:top]:
            members, v = attr.groups[g], attr.values[i, g]
            if members == [IMAGE]:
                what = "image features"
            else:
                words, fmt = WORDS.get(members[0], (members[0], _NUM))
                value = raw[i, col[members[0]]]
                what = f"{words} {fmt(value) if np.isfinite(value) else 'unknown'}"
                what += f" (+{len(members) - 1} correlated)" if len(members) > 1 else ""
            parts.append(f"{what}: {v:+.1f} {_direction(v, attr.target[i], class_names)}")
        out.append("; ".join(parts))
    return out


def _direction(value: float, target: int, class_names: Sequence[str]) -> str:
    if len(class_names) == 2:
        return f"toward {class_names[1] if value >= 0 else class_names[0]}"
    name = class_names[target]
    name = f"rating {name}" if str(name).isdigit() else name
    return f"{'toward' if value >= 0 else 'away from'} {name}"
