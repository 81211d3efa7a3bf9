"""Ordinal (cumulative-link) outputs and the training losses of the three label modes.

Malignancy is ordered (1 < 2 < ... < 5) and LIDC readers disagree by one step more often than not, so an
image model predicts K-1 cumulative logits `l_k`, sigmoid(l_k) = P(y > k) (Frank & Hall's decomposition),
instead of K unordered class scores. Every label mode is a target distribution over the K classes:

- `maxvote`: one-hot on the max-vote label (what the manifest's `malignancy` holds today);
- `soft`:    the readers' empirical distribution (3 of 4 readers said 4, one said 3 -> [0, 0, .25, .75, 0]);
- `mean`:    the readers' mean score, fitted as a regression on the model's expected score.

`maxvote` and `soft` share one loss: binary cross-entropy between the predicted P(y > k) and the target's
P(y > k) (hard 0/1 for a one-hot target, the share of readers above k for a distribution) — the
cumulative-link analogue of cross-entropy on soft targets. `mean` is the squared error between the
expected score sum_k P(y > k) and the readers' mean (both on the 0-based scale).
Evaluation is always against the max-vote label, whatever the mode.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ctnodule.errors import ConfigError
from ctnodule.vocab import LABEL_MODES

#: `head_params` keys of the nodule-CNN strategy (the descriptor regression's C), not of the ordinal head
STRATEGY_PARAMS = ("C",)


def ordinal_head_params(head_params: dict) -> dict:
    """`head_params` without the strategy's own keys: what `OrdinalHead` takes."""
    return {k: v for k, v in head_params.items() if k not in STRATEGY_PARAMS}


def cumulative_to_proba(logits: torch.Tensor) -> torch.Tensor:
    """(N, K-1) cumulative logits -> (N, K) class probabilities. P(y > k) is made non-increasing in k
    (running minimum), so every class probability is >= 0 and they sum to 1."""
    above = torch.sigmoid(logits)
    above = torch.cummin(above, dim=1).values
    ones = torch.ones_like(above[:, :1])
    zeros = torch.zeros_like(above[:, :1])
    upper = torch.cat([ones, above], dim=1)  # P(y > k-1) = P(y >= k)
    lower = torch.cat([above, zeros], dim=1)  # P(y > k)
    return (upper - lower).clamp_min(0.0)


def cumulative_targets(dist: torch.Tensor) -> torch.Tensor:
    """(N, K) target distribution -> (N, K-1) target P(y > k) = 1 - sum_{j<=k} p_j."""
    return (1.0 - dist.cumsum(dim=1)[:, :-1]).clamp(0.0, 1.0)


def expected_score(logits: torch.Tensor) -> torch.Tensor:
    """Expected class index (0-based) of cumulative logits: E[y] = sum_k P(y > k)."""
    return torch.sigmoid(logits).sum(dim=1)


class LabelLoss(nn.Module):
    """Loss of cumulative logits (N, K-1) against target distributions (N, K) for a label `mode`."""

    def __init__(self, mode: str = "maxvote"):
        super().__init__()
        if mode not in LABEL_MODES:
            raise ConfigError(f"unknown label mode {mode!r}; expected one of {', '.join(LABEL_MODES)}")
        self.mode = mode

    def forward(self, logits: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
        if logits.shape[1] + 1 != dist.shape[1]:
            raise ConfigError(f"{logits.shape[1]} cumulative logits need {logits.shape[1] + 1}-class targets, "
                              f"got {dist.shape[1]}")
        if self.mode == "mean":
            mean = (dist * torch.arange(dist.shape[1], dtype=dist.dtype, device=dist.device)).sum(dim=1)
            return F.mse_loss(expected_score(logits), mean)
        return F.binary_cross_entropy_with_logits(logits, cumulative_targets(dist))


def soft_cross_entropy(logits: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of (N, K) class logits against (N, K) target distributions (soft labels), for heads
    that predict classes rather than cumulative logits."""
    return -(dist * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
