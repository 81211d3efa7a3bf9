"""Losses for imbalanced classes that need no resampling: focal loss and logit-adjusted loss.

Focal loss (Lin et al. 2017) down-weights well-classified samples by (1 - p_t)^gamma so the many easy
majority samples stop dominating the gradient; gamma = 0 is cross-entropy. Logit adjustment (Menon et al.
2021, "Long-tail learning via logit adjustment") adds tau * log(prior_c) to the logits inside the loss
only; at prediction time the raw logits are used, which shifts the decision boundary towards the rare
classes by exactly the amount the prior biased them. tau = 0 is cross-entropy.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ctnodule.balance.base import BALANCERS, Balancer, check_labels
from ctnodule.balance.weights import balanced_class_weights
from ctnodule.errors import ConfigError


class FocalLoss(torch.nn.Module):
    """Mean focal loss -alpha_y (1 - p_y)^gamma log p_y over a batch of logits (N, C) and targets (N,)."""

    def __init__(self, gamma: float = 2.0, weight: torch.Tensor | None = None):
        super().__init__()
        self.gamma = float(gamma)
        self.register_buffer("weight", weight if weight is None else weight.float())

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(logits, dim=1).gather(1, target.view(-1, 1)).squeeze(1)
        loss = -((1.0 - log_p.exp()).clamp_min(0.0) ** self.gamma) * log_p
        if self.weight is None:
            return loss.mean()
        w = self.weight[target]
        return (w * loss).sum() / w.sum()  # same normalisation as weighted CrossEntropyLoss


class LogitAdjustedLoss(torch.nn.Module):
    """Cross-entropy on logits + tau * log(prior): the training-time half of logit adjustment."""

    def __init__(self, log_prior: torch.Tensor, tau: float = 1.0):
        super().__init__()
        self.tau = float(tau)
        self.register_buffer("log_prior", log_prior.float())

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits + self.tau * self.log_prior.to(logits.dtype), target)


@BALANCERS.register("focal")
class Focal(Balancer):
    """Focal loss; `weighted=True` also applies the balanced class weights as alpha."""

    def __init__(self, gamma: float = 2.0, weighted: bool = False) -> None:
        self.gamma = gamma
        self.weighted = weighted

    def class_weights(self, y: np.ndarray, n_classes: int) -> np.ndarray | None:
        return balanced_class_weights(y, n_classes) if self.weighted else None

    def loss(self, y_train: np.ndarray, n_classes: int) -> torch.nn.Module:
        if not float(self.gamma) >= 0:
            raise ConfigError(f"focal: gamma must be >= 0, got {self.gamma!r}")
        w = self.class_weights(check_labels(y_train, n_classes), n_classes)
        return FocalLoss(self.gamma, None if w is None else torch.as_tensor(w))


@BALANCERS.register("logit_adjusted")
class LogitAdjusted(Balancer):
    """Logit-adjusted cross-entropy with the training fold's class prior; predict with the raw logits."""

    def __init__(self, tau: float = 1.0) -> None:
        self.tau = tau

    def loss(self, y_train: np.ndarray, n_classes: int) -> torch.nn.Module:
        y_train = check_labels(y_train, n_classes)
        counts = np.bincount(y_train, minlength=n_classes).astype(np.float64)
        # an absent class gets half a sample's prior: finite, and the most strongly favoured class
        prior = np.maximum(counts, 0.5) / counts.sum()
        self.log_prior_ = np.log(prior)
        return LogitAdjustedLoss(torch.as_tensor(self.log_prior_), self.tau)
