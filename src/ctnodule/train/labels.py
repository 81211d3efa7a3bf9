"""Training targets of the three label modes (`--labels maxvote|mean|soft`) from the manifest.

Each mode becomes a (N, 5) target distribution over malignancy 1..5 (see `ctnodule.models.ordinal`):
`maxvote` is one-hot on `malignancy`; `soft` and `mean` use every reader's rating (`reader_ratings`,
"4;4;3;5"), as the empirical distribution or (through the loss) its mean. A row without reader ratings
falls back to its max-vote label. These columns are LABELS: `READER_COLUMNS` lists what must never reach a
model's inputs (tests check the feature builders against it).

The logistic-regression head (`head: logreg`) takes the same modes as class targets (`class_targets`):
`soft` is cross-entropy on the readers' distribution; `mean` is cross-entropy on the two-point
distribution on the scores either side of the readers' mean (its expected score is their mean), since a
multinomial regression has no expected-score loss. For the binary task both collapse to the share of
readers who rated 4-5 (`mean`: the share of the two-point distribution there). There a dataset without
any reader ratings trains on the max vote (`effective_labels`), so the default preset (`labels: soft`)
runs on every dataset; the ordinal image model asks for the ratings instead.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from ctnodule.errors import ConfigError, DataError
from ctnodule.models.ordinal import LABEL_MODES

N_SCORES = 5
#: manifest columns derived from the readers' ratings: labels, never features
READER_COLUMNS = ("malignancy", "label_binary", "reader_ratings", "n_readers", "n_ratings", "diagnosis",
                  "diagnosis_export")
READER_PREFIXES = ("rating_",)


def is_reader_column(name: str) -> bool:
    """True for a manifest column that comes from the readers (a label, or a reader's semantic rating)."""
    return name in READER_COLUMNS or name.startswith(READER_PREFIXES)


def parse_ratings(value: object) -> list[int]:
    """"4;4;3" -> [4, 4, 3]; empty/NaN -> []. A rating outside 1..5 is a `DataError`."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    text = str(value).strip()
    if not text:
        return []
    out = [int(float(v)) for v in text.split(";") if v.strip()]
    if any(not 1 <= r <= N_SCORES for r in out):
        raise DataError(f"reader_ratings {text!r}: every rating must be 1..{N_SCORES}")
    return out


def target_distributions(frame: pd.DataFrame, mode: str) -> np.ndarray:
    """(N, 5) float32 targets for label `mode`: one-hot max vote, or the readers' rating distribution."""
    if mode not in LABEL_MODES:
        raise ConfigError(f"--labels {mode!r}: expected one of {', '.join(LABEL_MODES)}")
    maxvote = pd.to_numeric(frame["malignancy"], errors="coerce").to_numpy()
    if np.isnan(maxvote).any() or not np.isin(maxvote, np.arange(1, N_SCORES + 1)).all():
        raise DataError("column 'malignancy' must hold 1..5 for every row to train on")
    out = np.eye(N_SCORES, dtype=np.float32)[maxvote.astype(int) - 1]
    if mode == "maxvote":
        return out
    if "reader_ratings" not in frame:
        raise ConfigError(f"--labels {mode} needs every reader's rating (manifest column 'reader_ratings'); "
                          "re-import the data with a ctnodule that stores it, or use --labels maxvote")
    for i, value in enumerate(frame["reader_ratings"].tolist()):
        ratings = parse_ratings(value)
        if ratings:
            out[i] = np.bincount(np.asarray(ratings) - 1, minlength=N_SCORES) / len(ratings)
    return out


def two_point(dist: np.ndarray) -> np.ndarray:
    """(N, 5) distributions -> the distributions on the two scores either side of each one's mean (a mean
    of 3.25 -> 0.75 on 3 and 0.25 on 4), which have the same mean and the least spread."""
    mean = dist @ np.arange(N_SCORES)
    low = np.clip(np.floor(mean).astype(int), 0, N_SCORES - 1)
    frac = mean - low
    out = np.zeros_like(dist)
    out[np.arange(len(dist)), low] = 1.0 - frac
    out[np.arange(len(dist)), np.minimum(low + 1, N_SCORES - 1)] += frac
    return out


def class_targets(frame: pd.DataFrame, mode: str, task: str) -> np.ndarray:
    """(N, n_classes) target distributions of the scikit-learn head for label `mode` and `task` (module doc)."""
    dist = target_distributions(frame, mode)
    if mode == "mean":
        dist = two_point(dist)
    if task == "binary":
        return np.stack([dist[:, :3].sum(1), dist[:, 3:].sum(1)], axis=1)
    return dist


def effective_labels(frame: pd.DataFrame, mode: str, log: Callable[[str], None] | None = None) -> str:
    """`mode`, or "maxvote" (said once through `log`) when `frame` holds no reader ratings at all."""
    if mode == "maxvote":
        return mode
    has = "reader_ratings" in frame and any(parse_ratings(v) for v in frame["reader_ratings"].tolist())
    if not has and log is not None:
        log(f"labels {mode}: the data has no reader ratings (reader_ratings), training on the max vote")
    return mode if has else "maxvote"
