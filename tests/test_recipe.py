"""Presets: the seed recipe as the issue states it, overrides, and clear errors."""

from __future__ import annotations

import pytest

from ctnodule.errors import ConfigError
from ctnodule.recipe import load_preset


def test_seed_preset_is_the_reports_recipe():
    cfg = load_preset("seed")
    assert (cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.l1, cfg.batch_size) == ("adam", 1e-4, 1e-4, 1e-5, 64)
    assert (cfg.epochs, cfg.patience, cfg.lr_patience, cfg.lr_factor) == (50, 10, 5, 0.3)
    a = cfg.augment
    assert (a.rotation, a.shear, a.zoom, a.hflip, a.vflip) == (30.0, 0.2, 0.2, True, True)
    assert cfg.head == "seed" and cfg.preprocess == "seed"


def test_overrides_apply_and_none_keeps_the_preset():
    cfg = load_preset("default", task="multiclass", backbone=None, folds=3)
    assert cfg.task == "multiclass" and cfg.folds == 3 and cfg.backbone == load_preset("default").backbone


def test_bad_values_are_config_errors():
    with pytest.raises(ConfigError, match="did you mean 'seed'"):
        load_preset("sed")
    with pytest.raises(ConfigError, match="task"):
        load_preset("default", task="ternary")
    with pytest.raises(ConfigError, match="freeze_backbone"):
        load_preset("default", head="svm", freeze_backbone=False)
    with pytest.raises(ConfigError, match="holdout"):
        load_preset("default", holdout=1.5)
    with pytest.raises(ConfigError, match="segmenter"):
        load_preset("default", segmenter="unet")
