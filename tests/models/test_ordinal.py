"""Label-mode losses on toy cases with known answers, and the cumulative read-out."""

from __future__ import annotations

import math

import pytest
import torch

from ctnodule.errors import ConfigError
from ctnodule.models.ordinal import (
    LabelLoss,
    cumulative_targets,
    cumulative_to_proba,
    expected_score,
    soft_cross_entropy,
)


def test_cumulative_read_out_sums_to_one_and_matches_hand_values():
    # P(y>0)=.9, P(y>1)=.5, P(y>2)=.5, P(y>3)=.1 -> classes .1, .4, 0, .4, .1
    logits = torch.logit(torch.tensor([[0.9, 0.5, 0.5, 0.1]]))
    p = cumulative_to_proba(logits)
    assert torch.allclose(p, torch.tensor([[0.1, 0.4, 0.0, 0.4, 0.1]]), atol=1e-6)
    # a non-monotone prediction is repaired by the running minimum: never a negative probability
    q = cumulative_to_proba(torch.logit(torch.tensor([[0.2, 0.7, 0.1, 0.05]])))
    assert (q >= 0).all() and torch.allclose(q.sum(1), torch.ones(1))
    assert expected_score(logits).item() == pytest.approx(2.0)


def test_maxvote_loss_of_a_zero_logit_is_log_two():
    # sigmoid(0) = 1/2 for each of the 4 cumulative targets, whatever the label: BCE = ln 2
    dist = torch.eye(5)[[0, 2, 4]]
    assert LabelLoss("maxvote")(torch.zeros(3, 4), dist).item() == pytest.approx(math.log(2))


def test_maxvote_loss_is_small_for_a_confident_right_answer_and_large_for_a_wrong_one():
    dist = torch.eye(5)[[3]]  # score 4: targets P(y>k) = 1, 1, 1, 0
    right = torch.tensor([[9.0, 9.0, 9.0, -9.0]])
    wrong = -right
    assert LabelLoss("maxvote")(right, dist).item() == pytest.approx(math.log1p(math.exp(-9)), rel=2e-3)
    assert LabelLoss("maxvote")(wrong, dist).item() == pytest.approx(9 + math.log1p(math.exp(-9)), rel=2e-3)


def test_soft_targets_are_the_readers_share_above_each_cut_and_its_own_minimum():
    dist = torch.tensor([[0.0, 0.0, 0.25, 0.75, 0.0]])  # 1 reader said 3, 3 readers said 4
    target = cumulative_targets(dist)
    assert torch.allclose(target, torch.tensor([[1.0, 1.0, 0.75, 0.0]]))
    loss = LabelLoss("soft")
    exact = torch.logit(target.clamp(1e-6, 1 - 1e-6))  # predicting the readers' own shares
    # BCE at the target equals the targets' entropy: (3/4 ln 4/3 + 1/4 ln 4) / 4 on the one uncertain cut
    entropy = (0.75 * math.log(4 / 3) + 0.25 * math.log(4)) / 4
    assert loss(exact, dist).item() == pytest.approx(entropy, abs=1e-4)
    assert loss(exact + torch.tensor([[0.0, 0.0, 1.0, 0.0]]), dist).item() > entropy


def test_mean_mode_is_squared_error_of_the_expected_score():
    dist = torch.tensor([[0.0, 0.5, 0.5, 0.0, 0.0]])  # readers' mean score 2.5 -> 1.5 on the 0-based scale
    logits = torch.logit(torch.tensor([[0.9, 0.5, 0.5, 0.1]]))  # expected score 2.0
    assert LabelLoss("mean")(logits, dist).item() == pytest.approx(0.25, abs=1e-6)


def test_soft_cross_entropy_of_uniform_logits_is_log_k():
    dist = torch.tensor([[0.0, 0.2, 0.8, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0, 0.0]])
    assert soft_cross_entropy(torch.zeros(2, 5), dist).item() == pytest.approx(math.log(5))


def test_unknown_mode_and_wrong_shapes_are_config_errors():
    with pytest.raises(ConfigError, match="label mode"):
        LabelLoss("median")
    with pytest.raises(ConfigError, match="5-class"):
        LabelLoss("soft")(torch.zeros(2, 4), torch.zeros(2, 3))
