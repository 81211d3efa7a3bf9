import numpy as np
import pytest
import torch
from sklearn.utils.class_weight import compute_class_weight

from ctnodule.balance import balanced_class_weights, class_weight_table, resolve


def test_weights_match_sklearn_balanced():
    y = np.array([0] * 50 + [1] * 7 + [2] * 20 + [3] * 3 + [4] * 11)
    expected = compute_class_weight("balanced", classes=np.arange(5), y=y)
    np.testing.assert_allclose(balanced_class_weights(y, 5), expected)
    np.testing.assert_allclose(resolve("weights").class_weights(y, 5), expected)


def test_weighted_loss_carries_the_weights():
    y = np.array([0, 0, 0, 1])
    loss = resolve("weights").loss(y, 2)
    assert isinstance(loss, torch.nn.CrossEntropyLoss)
    np.testing.assert_allclose(loss.weight.numpy(), [4 / 6, 4 / 2], rtol=1e-6)


def test_absent_class_gets_neutral_weight_with_warning():
    y = np.array([0, 0, 2])
    with pytest.warns(UserWarning, match=r"\[1\]"):
        w = balanced_class_weights(y, 3)
    np.testing.assert_allclose(w, [3 / 6, 1.0, 3 / 3])


def test_none_has_unweighted_loss():
    b = resolve("none")
    assert b.class_weights(np.array([0, 1, 1]), 2) is None
    assert resolve("none").loss(np.array([0, 1, 1]), 2).weight is None


def test_class_weight_table_both_tasks():
    mal = np.array([0] * 10 + [1] * 5 + [2] * 20 + [3] * 4 + [4] * 1)
    table = class_weight_table(mal, (mal >= 3).astype(int))
    assert list(table["task"].value_counts().sort_index()) == [2, 5]
    multi = table[table.task == "multiclass"]
    assert multi["count"].sum() == 40
    np.testing.assert_allclose(multi["weight"], compute_class_weight("balanced", classes=np.arange(5), y=mal))
    binary = table[table.task == "binary"]
    np.testing.assert_allclose(binary["share"], [35 / 40, 5 / 40])
