"""The words every stage shares: tasks, views, class names and how a manifest's labels map to classes.

Defined once here (the ground floor) so a new task or view is one edit, and so the CLI can offer them as
typed choices without importing any stage.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from ctnodule.errors import ConfigError, DataError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

Task = Literal["binary", "multiclass"]
View = Literal["full", "nodule"]

TASKS: tuple[str, ...] = ("binary", "multiclass")
VIEWS: tuple[str, ...] = ("full", "nodule")
N_CLASSES: dict[str, int] = {"binary": 2, "multiclass": 5}
CLASS_NAMES: dict[str, list[str]] = {
    "multiclass": ["1", "2", "3", "4", "5"],
    "binary": ["benign (1-3)", "malignant (4-5)"],
}
#: Heads a recipe can name (the models registry holds their factories; a test keeps the two equal).
HEADS: tuple[str, ...] = ("linear", "logreg", "mlp", "ordinal", "seed", "svm")
Head = Literal["linear", "logreg", "mlp", "ordinal", "seed", "svm"]
#: Training targets of the ordinal image model: the max-vote label, the readers' mean, their distribution.
LABEL_MODES: tuple[str, ...] = ("maxvote", "mean", "soft")
LabelMode = Literal["maxvote", "mean", "soft"]
#: Class-imbalance methods a recipe can name (the balance registry holds them; a test keeps the two equal).
IMBALANCE: tuple[str, ...] = ("cgan", "diffusion", "focal", "logit_adjusted", "none", "oversample", "smote", "smote_embed",
                              "undersample", "weights")
Imbalance = Literal["cgan", "diffusion", "focal", "logit_adjusted", "none", "oversample", "smote", "smote_embed", "undersample",
                    "weights"]


def class_names(task: str) -> list[str]:
    """The class names of `task`; an unknown task is a `ConfigError` listing the known ones."""
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; expected one of {TASKS}")
    return list(CLASS_NAMES[task])


def binary_label(malignancy: int) -> int:
    """LIDC convention: 1-3 benign (0), 4-5 malignant (1)."""
    return int(malignancy >= 4)


def task_labels(frame: pd.DataFrame, task: str) -> np.ndarray:
    """Class indices of every row for `task`: malignancy 1..5 -> 0..4, or label_binary (0 benign, 1 malignant)."""
    import numpy as np  # imported here: the CLI reads this module's names without paying for numpy/pandas
    import pandas as pd

    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; expected one of {TASKS}")
    column = "malignancy" if task == "multiclass" else "label_binary"
    if column not in frame.columns:
        raise DataError(f"the dataset has no {column!r} column, needed for the {task} task")
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
    if np.isnan(values).any():
        row = int(np.isnan(values).nonzero()[0][0])
        raise DataError(f"{column} is missing or not a number", row=row + 2)
    labels = values.astype(int) - (1 if task == "multiclass" else 0)
    bad = (labels < 0) | (labels >= N_CLASSES[task])
    if bad.any():
        row = int(bad.nonzero()[0][0])
        raise DataError(f"{column} {values[row]:g} is outside the {task} range", row=row + 2)
    return labels
