"""`TrainConfig`: everything that decides a training run, with the `seed` and `default` presets as YAML.

A preset (`src/ctnodule/configs/{seed,default}.yaml`) sets the recipe; CLI options override single fields
(`None` = keep the preset's value). The resolved config, plus what actually happened (weights loaded,
seed, versions), is written to the run's `config.yaml`, so a run can be rebuilt and audited.
"""

from __future__ import annotations

from importlib import resources
from typing import Any, Literal

import pydantic
import yaml

from ctnodule.config import StrictModel
from ctnodule.errors import ConfigError
from ctnodule.vocab import LabelMode

PRESETS = ("seed", "default", "fast", "nodule-cnn", "find-crop")
#: the preset `ctnodule train` uses per view when none is named (full: chosen on the composite CV, issue 13)
DEFAULT_PRESETS = {"nodule": "default", "full": "find-crop"}
#: the shipped preprocessing recipes (`ctnodule/configs/preprocess-NAME-VIEW.yaml`)
PREPROCESS_RECIPES = ("default", "seed", "nodule_cnn")


class AugmentConfig(StrictModel):
    """Random affine + flips on [0, 1] tensors (see `train/augment.py`). `mode`: when to apply them."""

    mode: Literal["online", "offline", "none"] = "online"
    rotation: float = 30.0  # degrees, uniform in +-rotation
    shear: float = 0.2  # shear factor, uniform in +-shear
    zoom: float = 0.2  # scale uniform in [1 - zoom, 1 + zoom]
    hflip: bool = True
    vflip: bool = True
    offline_copies: int = 4  # offline mode: augmented copies added per training sample, drawn once


class TrainConfig(StrictModel):
    """One training recipe. Field defaults are the `default` preset's fallbacks."""

    preset: str = "default"
    view: Literal["full", "nodule"] = "nodule"
    # full view only: find the nodule on the slice and classify the nodule-view crop cut around it
    # (preprocess/find.py). none: the whole slice is the input | found: train on crops found the same way
    # as at prediction | truth: train on crops around the manifest's mask (prediction still finds them)
    find: Literal["none", "found", "truth"] = "none"
    # how the finder picks among its candidates. blob: the strongest blob that segments as a nodule |
    # learned: the one a ranker fitted on each fold's training slices scores highest (preprocess/rank.py)
    find_rank: Literal["blob", "learned"] = "blob"
    # learned ranking only: how many of the ranker's favourites the nodule model judges. 1: its favourite |
    # k > 1: the k best, their class probabilities averaged with the ranker's scores as weights (soft)
    find_top: int = 1
    task: Literal["binary", "multiclass"] = "binary"
    # how `predict` outlines a nodule from a location in a CT: classical (preprocess/segment.py) | learned:
    # its decision slice re-outlined by a U-Net fitted per fold on the training nodules (preprocess/segnet.py);
    # a find recipe judges each found candidate on its classical and on its learned outline and averages them
    segmenter: Literal["classical", "learned"] = "classical"
    segmenter_epochs: int = pydantic.Field(default=30, ge=1)
    # a shipped preprocessing recipe ("default", "seed": configs/preprocess-NAME-VIEW.yaml) or a recipe YAML path
    preprocess: str = "default"
    backbone: str = "efficientnet_lite0"
    weights: str = "auto"
    head: str = "mlp"
    head_params: dict[str, Any] = pydantic.Field(default_factory=dict)
    freeze_backbone: bool = False  # True: features once (cached), only the head trains
    channels: Literal["grey", "context"] = "context"  # context = 3 neighbouring slices (2.5D) when present
    # tabular features concatenated to the image features: none | size (log equivalent diameter from mask x
    # spacing) | descriptors (size, shape, HU density, rim; see models/descriptors.py) | radiomics (3D IBSI
    # features stored by `import voi --radiomics`) | radiomics2d (IBSI features of the slice + mask)
    tabular: Literal["none", "size", "descriptors", "radiomics", "radiomics2d"] = "size"
    optimizer: Literal["adam", "adamw"] = "adamw"
    lr: float = 1e-3
    backbone_lr: float | None = None  # fine-tuning: backbone lr (None = lr)
    weight_decay: float = 1e-4
    l1: float = 0.0
    batch_size: int = 64
    epochs: int = 30
    patience: int = 10  # early stopping on validation loss; best weights restored
    lr_patience: int = 5
    lr_factor: float = 0.3
    label_smoothing: float = 0.0
    # training targets of the ordinal image model (head: ordinal) or the logistic head (head: logreg):
    # maxvote | mean | soft (readers' ratings, train/labels.py); evaluation is always against the max vote
    labels: LabelMode = "maxvote"
    augment: AugmentConfig = pydantic.Field(default_factory=AugmentConfig)
    # scikit-learn heads: each training sample enters once more with the automatic segmentation's mask
    # instead of the given one (train/mask_augment.py), so the head reads automatic outlines at prediction
    mask_augment: bool = False
    tta: bool = False  # average the prediction over flips at validation/inference
    imbalance: str = "none"
    # scikit-learn heads: calibrate probabilities on patient-grouped inner folds of each training fold
    # (models/calibration.py): none | platt | isotonic
    calibration: Literal["none", "platt", "isotonic"] = "none"
    imbalance_params: dict[str, Any] = pydantic.Field(default_factory=dict)
    folds: int = 5
    holdout: float | None = None  # e.g. 0.2: one patient-grouped 80/20 split instead of k-fold CV
    val_fraction: float = 0.15  # share of each training fold's patients held out for early stopping
    seed: int = 0
    device: str = "cpu"
    workers: int = 0  # DataLoader workers (0: the main process; tensors are in memory anyway)

    @pydantic.field_validator("lr", "weight_decay", "l1", "label_smoothing")
    @classmethod
    def _non_negative(cls, v: float) -> float:
        if v < 0:
            raise ValueError("must be >= 0")
        return v

    @pydantic.model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.head in ("svm", "logreg") and not self.freeze_backbone:
            raise ValueError(f"head {self.head!r} is fitted by scikit-learn on cached features: set "
                             "freeze_backbone: true")
        if self.calibration != "none" and self.head not in ("svm", "logreg"):
            raise ValueError(f"calibration {self.calibration!r} is for the scikit-learn heads (svm, logreg), "
                             f"not {self.head!r}; use calibration: none")
        if self.calibration != "none" and self.imbalance not in ("none", "weights"):
            raise ValueError(f"calibration {self.calibration!r} with --imbalance {self.imbalance} would calibrate "
                             "to the resampled class mix; use --imbalance none or weights")
        if self.holdout is not None and not 0.0 < self.holdout < 1.0:
            raise ValueError(f"holdout must be a fraction in (0, 1), got {self.holdout}")
        if self.preprocess not in PREPROCESS_RECIPES and not self.preprocess.endswith((".yaml", ".yml")):
            raise ValueError(f"preprocess must be one of {PREPROCESS_RECIPES} or a recipe .yaml file, "
                             f"got {self.preprocess!r}")
        if not labels_fit(self.labels, self.head, self.imbalance, self.calibration):
            raise ValueError(f"labels {self.labels!r} (the readers' ratings as targets) train the ordinal image "
                             "model (head: ordinal, e.g. --preset nodule-cnn) or the logistic head without a "
                             "resampling --imbalance or --calibration (both act on hard labels); use labels: maxvote")
        if self.mask_augment and not mask_augment_fits(self.head, self.imbalance, self.calibration):
            raise ValueError("mask_augment adds training rows to a scikit-learn head (svm, logreg) without a "
                             "resampling --imbalance or --calibration; use mask_augment: false")
        if self.head == "ordinal" and self.freeze_backbone:
            raise ValueError("head 'ordinal' trains its backbone (the nodule CNN): set freeze_backbone: false")
        if self.find != "none" and self.view != "full":
            raise ValueError(f"find {self.find!r} finds the nodule on full slices: use view: full (or find: none)")
        if self.find_top < 1 or (self.find_top > 1 and (self.find == "none" or self.find_rank != "learned")):
            raise ValueError(f"find_top {self.find_top} must be 1, or more with find: found|truth and find_rank: "
                             "learned (the ranker's scores weigh the candidates)")
        if self.folds < 2:
            raise ValueError(f"folds must be >= 2, got {self.folds}")
        return self

    @property
    def input_view(self) -> str:
        """The view the model itself judges: a find-then-classify model judges the nodule view it cuts."""
        return "nodule" if self.find != "none" else self.view


def labels_fit(labels: str, head: str, imbalance: str, calibration: str) -> bool:
    """Whether label mode `labels` can train `head`: the max vote trains anything; the readers' ratings
    (mean/soft) train the ordinal image model, or the logistic head without a resampling balancer or
    calibration, which act on hard labels (class weights compose with soft targets)."""
    if labels == "maxvote" or head == "ordinal":
        return True
    return head == "logreg" and imbalance in ("none", "weights") and calibration == "none"


def mask_augment_fits(head: str, imbalance: str, calibration: str) -> bool:
    """Whether `mask_augment` can train `head`: its copies are extra rows of a scikit-learn head's one-step fit,
    which a resampling balancer or calibration's inner folds would not see as copies."""
    return head in ("svm", "logreg") and imbalance in ("none", "weights") and calibration == "none"


def default_preset(view: str) -> str:
    """The preset for `view` when none is named."""
    return DEFAULT_PRESETS.get(view, "default")


def load_preset(name: str, **overrides: Any) -> TrainConfig:
    """The preset `name` with `overrides` (None values ignored) applied; errors name the bad field.

    A preset's own `labels: soft` gives way to the max vote when the overrides pick a head, balancer or
    calibration that cannot take it (e.g. `--preset default --imbalance smote`), and its `mask_augment: true`
    to false likewise; asking for both is an error."""
    if name not in PRESETS:
        import difflib

        close = difflib.get_close_matches(name, PRESETS, n=1)
        raise ConfigError(f"unknown preset {name!r}" + (f"; did you mean {close[0]!r}?" if close else "")
                          + f" Available: {', '.join(PRESETS)}")
    text = resources.files("ctnodule").joinpath("configs", f"{name}.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text) or {}
    data["preset"] = name
    if overrides.get("head") not in (None, data.get("head")) and overrides.get("head_params") is None:
        data.pop("head_params", None)  # the preset's head parameters belong to the preset's head
    for key, value in overrides.items():
        if value is None:
            continue
        if key == "augment" and isinstance(value, str):
            data.setdefault("augment", {})["mode"] = value
        else:
            data[key] = value
    if overrides.get("labels") is None and not labels_fit(data.get("labels", "maxvote"), data.get("head", ""),
                                                          data.get("imbalance", "none"),
                                                          data.get("calibration", "none")):
        data["labels"] = "maxvote"  # the preset's soft labels give way to the options asked for
    if overrides.get("mask_augment") is None and not mask_augment_fits(data.get("head", ""),
                                                                       data.get("imbalance", "none"),
                                                                       data.get("calibration", "none")):
        data["mask_augment"] = False  # as the labels: the preset's mask augmentation gives way
    try:
        return TrainConfig.model_validate(data)
    except pydantic.ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"train config ({name} preset + options): {problems}") from exc
