import numpy as np
import torch
import torch.nn.functional as F

from ctnodule.balance import resolve
from ctnodule.balance.losses import FocalLoss


def _batch(seed=0, n=64, c=5):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, generator=g) * 3, torch.randint(0, c, (n,), generator=g)


def test_focal_is_cross_entropy_at_gamma_zero():
    logits, target = _batch()
    y = target.numpy()
    torch.testing.assert_close(resolve("focal", gamma=0.0).loss(y, 5)(logits, target), F.cross_entropy(logits, target))
    w = torch.tensor([1.0, 2.0, 0.5, 3.0, 1.5])
    torch.testing.assert_close(FocalLoss(0.0, w)(logits, target), F.cross_entropy(logits, target, weight=w))


def test_focal_downweights_easy_samples():
    logits, target = _batch(1)
    ce = F.cross_entropy(logits, target, reduction="none")
    focal = FocalLoss(2.0)(logits, target)
    assert focal < ce.mean()
    # the per-sample factor (1 - p_t)^2 shrinks confident correct predictions most
    easy = torch.tensor([[8.0, 0.0]]), torch.tensor([0])
    hard = torch.tensor([[0.0, 8.0]]), torch.tensor([0])
    assert FocalLoss(2.0)(*easy) / F.cross_entropy(*easy) < FocalLoss(2.0)(*hard) / F.cross_entropy(*hard)


def test_logit_adjusted_is_cross_entropy_at_tau_zero():
    logits, target = _batch(2)
    loss = resolve("logit_adjusted", tau=0.0).loss(target.numpy(), 5)
    torch.testing.assert_close(loss(logits, target), F.cross_entropy(logits, target))


def test_logit_adjusted_adds_tau_log_prior():
    y = np.array([0] * 30 + [1] * 10)
    b = resolve("logit_adjusted", tau=1.5)
    loss = b.loss(y, 2)
    np.testing.assert_allclose(b.log_prior_, np.log([0.75, 0.25]))
    logits, target = torch.zeros(4, 2), torch.tensor([0, 1, 1, 0])
    adjusted = logits + 1.5 * torch.log(torch.tensor([0.75, 0.25]))
    torch.testing.assert_close(loss(logits, target), F.cross_entropy(adjusted, target))
    # the rare class pays more loss at equal logits: the model must push its logit higher
    assert F.cross_entropy(adjusted[1:2], target[1:2]) > F.cross_entropy(adjusted[0:1], target[0:1])
