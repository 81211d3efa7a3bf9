"""The shared vocabulary: the CLI's typed choices must be exactly what the registries can build, and labels
map the LIDC way."""

from __future__ import annotations

import typing

import pandas as pd
import pytest

from ctnodule import vocab
from ctnodule.errors import ConfigError, DataError


def test_choices_match_the_registries():
    from ctnodule.balance import available
    from ctnodule.models.heads import HEADS

    assert tuple(HEADS.available()) == vocab.HEADS == typing.get_args(vocab.Head)
    assert tuple(available()) == vocab.IMBALANCE == typing.get_args(vocab.Imbalance)
    assert vocab.TASKS == typing.get_args(vocab.Task) and vocab.VIEWS == typing.get_args(vocab.View)


def test_labels_map_the_lidc_way():
    frame = pd.DataFrame({"malignancy": [1, 3, 4, 5], "label_binary": [0, 0, 1, 1]})
    assert vocab.task_labels(frame, "multiclass").tolist() == [0, 2, 3, 4]
    assert vocab.task_labels(frame, "binary").tolist() == [0, 0, 1, 1]
    assert [vocab.binary_label(m) for m in range(1, 6)] == [0, 0, 0, 1, 1]
    with pytest.raises(DataError, match="row 3"):
        vocab.task_labels(frame.assign(malignancy=[1, 6, 4, 5]), "multiclass")
    with pytest.raises(ConfigError, match="unknown task"):
        vocab.class_names("ternary")
