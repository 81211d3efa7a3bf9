"""A small residual network built for nodule crops (32–64 px at ~1 mm/px), trained from scratch.

Why not an ImageNet backbone: at 64 px a stride-32 network (EfficientNet-Lite0, ResNet) ends on a 2x2 map,
so its pooled features describe the crop, not the nodule, and Grad-CAM cannot point at anything (issue 9
measured 2.6 % of the heat on the nodule). This net downsamples `len(widths) - 1` times (x4 with the
default three stages), so a 32-px crop ends on an 8x8 map of 4 mm cells: the head pools features that
are located, and a class activation map can land on the nodule.

`nodule_resnet_roi` also takes the nodule mask as one extra input channel after the image channels. The
mask is convolved with the image (the outline is the strongest size/shape cue: +0.03-0.08 AUC per fold
in bench/bench_image_model.py) and it zeroes the final map outside the nodule grown by one cell (`roi`),
so the head reads features located on the nodule and its rim (whose receptive fields still see the
context), and a class activation map of `roi` can only light up there.

They are registered in timm's model registry (`nodule_resnet`, `nodule_resnet_wide`, `nodule_resnet_roi`), so
`ctnodule.models.backbones.create_backbone` builds it by name like any timm architecture (timm's
`forward_features` / `num_features` / `in_chans` conventions).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from timm.models import register_model
from torch import nn


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 projection) shortcut: He et al.'s ResNet block."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.act = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act(out + self.shortcut(x))


class RoiMask(nn.Module):
    """Zero a feature map (N, F, h, w) outside a (N, 1, H, W) mask (> 0 = nodule) brought to the map's grid
    and grown by one cell; a sample with an empty mask keeps its whole map."""

    def forward(self, fmap: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        w = nn.functional.adaptive_max_pool2d((mask > 0).to(fmap.dtype), fmap.shape[-2:])
        w = nn.functional.max_pool2d(w, 3, 1, 1)
        w = torch.where(w.sum(dim=(2, 3), keepdim=True) > 0, w, torch.ones_like(w))
        return fmap * w


class NoduleResNet(nn.Module):
    """Stem 3x3 conv at full resolution, then one BasicBlock per stage; every stage after the first halves
    the map. (N, in_chans, H, W) -> (N, widths[-1], H / 2**(len(widths)-1), W / ...)."""

    def __init__(self, widths: Sequence[int] = (32, 64, 128), in_chans: int = 3, num_classes: int = 0,
                 global_pool: str = "avg", drop_rate: float = 0.0, roi: bool = False, **_: object):
        super().__init__()
        self.in_chans = in_chans
        self.roi = RoiMask() if roi else None
        stem_in = in_chans + 1 if roi else in_chans  # the roi net convolves the mask channel too
        self.stem = nn.Sequential(nn.Conv2d(stem_in, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]),
                                  nn.ReLU(inplace=True))
        stages, cin = [], widths[0]
        for i, w in enumerate(widths):
            stages.append(BasicBlock(cin, w, stride=1 if i == 0 else 2))
            cin = w
        self.stages = nn.Sequential(*stages)
        self.num_features = cin
        self.global_pool = global_pool
        self.drop = nn.Dropout(drop_rate)
        self.fc: nn.Module = nn.Linear(cin, num_classes) if num_classes else nn.Identity()
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        fmap = self.stages(self.stem(x))
        return fmap if self.roi is None else self.roi(fmap, x[:, -1:])

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        if self.global_pool:
            x = x.mean(dim=(2, 3))
        return self.fc(self.drop(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _build(widths: Sequence[int], pretrained: bool, **kwargs: object) -> NoduleResNet:
    if pretrained:
        raise ValueError("nodule_resnet has no pretrained weights: it is trained from scratch")
    return NoduleResNet(widths, **kwargs)


@register_model
def nodule_resnet(pretrained: bool = False, **kwargs: object) -> NoduleResNet:
    """Widths 32-64-128 (~0.5 M parameters): an 8x8 final map on a 32-px crop."""
    return _build((32, 64, 128), pretrained, **kwargs)


@register_model
def nodule_resnet_roi(pretrained: bool = False, **kwargs: object) -> NoduleResNet:
    """`nodule_resnet` that also reads the nodule mask (one input channel after the image) and keeps its
    final map on the nodule only; `in_chans` counts the image channels."""
    return _build((32, 64, 128), pretrained, roi=True, **kwargs)


@register_model
def nodule_resnet_wide(pretrained: bool = False, **kwargs: object) -> NoduleResNet:
    """Widths 48-96-192 (~1.1 M parameters)."""
    return _build((48, 96, 192), pretrained, **kwargs)
