"""Augmentation: seeded, range-preserving, and the flips/affine it promises."""

from __future__ import annotations

import torch

from ctnodule.models.augment import apply_affine, augment_batch, draw_affine, flip_views
from ctnodule.recipe import AugmentConfig


def _x() -> torch.Tensor:
    return torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(1))


def test_same_seed_same_draw_different_seed_different_draw():
    cfg = AugmentConfig()
    a = augment_batch(_x(), cfg, torch.Generator().manual_seed(0))
    b = augment_batch(_x(), cfg, torch.Generator().manual_seed(0))
    c = augment_batch(_x(), cfg, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.allclose(a, c)


def test_values_stay_in_input_range_and_shape():
    x = _x()
    out = augment_batch(x, AugmentConfig(), torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    assert out.min() >= x.min() - 1e-6 and out.max() <= x.max() + 1e-6


def test_mode_none_is_identity():
    x = _x()
    assert torch.equal(augment_batch(x, AugmentConfig(mode="none"), torch.Generator()), x)


def test_flip_only_config_gives_exact_flips():
    cfg = AugmentConfig(rotation=0.0, shear=0.0, zoom=0.0, hflip=True, vflip=False)
    x = _x()
    out = apply_affine(x, draw_affine(len(x), cfg, torch.Generator().manual_seed(3)))
    for o, i in zip(out, x):
        assert torch.allclose(o, i, atol=1e-5) or torch.allclose(o, i.flip(-1), atol=1e-5)


def test_flip_views_are_the_four_flips():
    x = _x()
    views = flip_views(x)
    assert len(views) == 4 and torch.equal(views[3], x.flip(-1).flip(-2))
