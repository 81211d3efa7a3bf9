"""Training augmentation: random rotation, shear, zoom and flips as ONE batched affine warp.

Drawing and applying are split (MONAI's rule): `draw_affine` turns a seeded `torch.Generator` into one
2x3 matrix per sample, `apply_affine` warps a batch with them (`affine_grid` + `grid_sample`, bilinear,
border padding). One warp per batch instead of a chain of per-image PIL ops is what makes online
augmentation cheap on 2 CPU cores. The seed's Keras ImageDataGenerator used the same parameters
(rotation 30 deg, shear 0.2, zoom 0.2, h/v flips).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ctnodule.recipe import AugmentConfig


def draw_affine(n: int, cfg: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """(n, 2, 3) matrices mapping output to input coordinates in [-1, 1] (affine_grid's convention)."""

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=generator)

    angle = uniform(-cfg.rotation, cfg.rotation) * (math.pi / 180.0)
    shear = uniform(-cfg.shear, cfg.shear)
    scale = uniform(1.0 - cfg.zoom, 1.0 + cfg.zoom)
    flip_h = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0) if cfg.hflip else torch.ones(n)
    flip_v = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0) if cfg.vflip else torch.ones(n)
    cos, sin = torch.cos(angle), torch.sin(angle)
    rot = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)  # (n, 2, 2)
    shr = torch.zeros(n, 2, 2)
    shr[:, 0, 0], shr[:, 0, 1], shr[:, 1, 1] = 1.0, shear, 1.0
    flip = torch.diag_embed(torch.stack([flip_h, flip_v], 1))
    linear = rot @ shr @ flip / scale[:, None, None]  # zoom in = sample a smaller input region
    return torch.cat([linear, torch.zeros(n, 2, 1)], dim=2)


def apply_affine(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Warp images (N, C, H, W) with per-sample matrices (N, 2, 3); values stay within the input range."""
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def augment_batch(x: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """One random augmentation per image of the batch (identity when `cfg.mode == "none"`)."""
    if cfg.mode == "none":
        return x
    return apply_affine(x, draw_affine(x.shape[0], cfg, generator).to(x.device))


def flip_views(x: torch.Tensor) -> list[torch.Tensor]:
    """Test-time augmentation views: the image and its horizontal, vertical and double flips."""
    return [x, x.flip(-1), x.flip(-2), x.flip(-1, -2)]
