"""The network a run trains and a Predictor exposes: backbone + head (+ bound size features), and a fold
ensemble of them.

Grad-CAM calls `model(x)` with one tensor. When the head also takes the measured nodule size, the
Predictor binds those per-sample values (`bind_extra`) for the batch it prepared; `forward(x)` then uses
them, and a batch whose size differs from the bound one is an error instead of a silent mismatch.
"""

from __future__ import annotations

import torch
from torch import nn

from ctnodule.errors import ConfigError
from ctnodule.models.backbones import Backbone
from ctnodule.models.heads import Head


class Classifier(nn.Module):
    """[0, 1] images (N, C, H, W) (+ size features (N, E)) -> class logits (N, K)."""

    def __init__(self, backbone: Backbone, head: Head):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self._bound: torch.Tensor | None = None

    @property
    def n_extra(self) -> int:
        return int(getattr(self.head, "n_extra", 0))

    def bind_extra(self, extra: torch.Tensor | None) -> None:
        """Tabular features used by `forward(x)` when none are passed (for Grad-CAM's one-argument call)."""
        self._bound = extra

    def forward(self, x: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.backbone(x), self._extra(x, extra))

    def _extra(self, x: torch.Tensor, extra: torch.Tensor | None) -> torch.Tensor | None:
        if self.n_extra == 0:
            return None
        if extra is None:
            extra = self._bound
        if extra is None or extra.shape[0] != x.shape[0]:
            raise ConfigError("this model also takes the nodule size: call Predictor.prepare(slices) for the "
                              "same batch first (it binds the sizes), or pass extra=")
        return extra.to(x.device)


class Ensemble(nn.Module):
    """Mean of the members' class probabilities, returned as log-probabilities.

    log(mean p) is a valid logit vector (softmax of it gives the mean probabilities back), so code that
    expects logits — losses, argmax, Grad-CAM targets — works on the ensemble unchanged.
    """

    def __init__(self, members: list[Classifier]):
        super().__init__()
        if not members:
            raise ConfigError("an ensemble needs at least one model")
        self.members = nn.ModuleList(members)

    def bind_extra(self, extra: torch.Tensor | None) -> None:
        for m in self.members:
            m.bind_extra(extra)

    def forward(self, x: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        if len(self.members) == 1:
            return self.members[0](x, extra)
        probs = torch.stack([m(x, extra).softmax(dim=1) for m in self.members]).mean(dim=0)
        return probs.clamp_min(1e-8).log()
