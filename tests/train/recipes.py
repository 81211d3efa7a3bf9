"""The tiny recipe the training machinery tests share: a random-init resnet18, frozen, MLP head on descriptors,
2 folds, 2 epochs, the classical segmenter (the learned one's U-Net fits, ~10 s each, have their own tests in
tests/preprocess/test_segnet.py and tests/predict/test_predict_volume.py). It checks the machinery, not accuracy."""

from __future__ import annotations

from ctnodule.recipe import TrainConfig, load_preset

QUIET = {"log": lambda m: None}


def tiny_frozen_cfg(**kw) -> TrainConfig:
    """The default preset shrunk for tests; `kw` overrides any field."""
    base = {"backbone": "resnet18", "weights": "none", "folds": 2, "epochs": 2, "tta": False, "tabular": "descriptors",
            "head": "mlp", "freeze_backbone": True, "segmenter": "classical"}
    base.update(kw)
    return load_preset("default", **base)
