"""`Batches` (what a network is fed: images or cached feature views, labels, tabular extras) and
`predict_logits` (the one inference loop, with test-time flips): shared by training and prediction.

Fine-tuning feeds images (augmented online while training, flip-averaged with TTA at inference); a frozen
backbone feeds cached feature views (a random flip view per sample while training — the augmentation that
costs nothing — and the mean over views when evaluating).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from ctnodule.models.augment import augment_batch, flip_views
from ctnodule.recipe import TrainConfig


@dataclasses.dataclass
class Batches:
    """Inputs of one split: `x` images (N, C, H, W) or feature views (V, N, ...); `extra` (N, E) or None."""

    x: torch.Tensor
    y: torch.Tensor
    extra: torch.Tensor | None
    views: bool  # True: x is (V, N, ...) cached feature views

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def take(self, idx: torch.Tensor, train: bool, cfg: TrainConfig, gen: torch.Generator) -> list[torch.Tensor]:
        """The model inputs for samples `idx`: one tensor (train) or the list of TTA views (eval)."""
        if self.views:
            if train:
                pick = torch.randint(0, self.x.shape[0], (len(idx),), generator=gen)
                return [self.x[pick, idx].float()]
            return [v[idx].float() for v in self.x]
        x = self.x[idx]
        if train:
            return [augment_batch(x, cfg.augment, gen)]
        return flip_views(x) if cfg.tta else [x]



def predict_logits(module: nn.Module, data: Batches, cfg: TrainConfig, device: str, batch_size: int = 256) -> torch.Tensor:
    """Mean logits over the TTA views, in order, without gradients (eval mode, restored after)."""
    was = module.training
    module.eval()
    out = []
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for start in range(0, len(data), batch_size):
            idx = torch.arange(start, min(start + batch_size, len(data)))
            extra = None if data.extra is None else data.extra[idx].to(device)
            views = data.take(idx, False, cfg, gen)
            probs = torch.stack([module(v.to(device), extra).softmax(1) for v in views]).mean(0)
            out.append(probs.clamp_min(1e-8).log().cpu())
    module.train(was)
    return torch.cat(out)
