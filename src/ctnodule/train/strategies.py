"""Training strategies: how one fold's model is fitted once `train_fold` has prepared the shared part.

- `FrozenSklearnHead`: frozen backbone features (cached) + a scikit-learn head (logreg, svm) fitted in one
  step; a linear surrogate of the head is kept for Grad-CAM.
- `FrozenTorchHead`: frozen backbone features + a PyTorch head trained by the engine with early stopping.
- `FineTune`: the whole network trained on images (online or offline augmentation).

Each declares what it supports, so a recipe it cannot run is refused up front by `strategy_for`, instead of
being discovered by a string check deep in a branch. A new way of training is one class here plus one test.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import torch

from ctnodule.data.slice import Slice
from ctnodule.data.splits import group_ids, patient_holdout
from ctnodule.errors import ConfigError, DataError
from ctnodule.models.attribution import feature_groups
from ctnodule.models.backbones import Backbone
from ctnodule.models.batches import Batches, predict_logits
from ctnodule.models.calibration import fit_calibrated
from ctnodule.models.descriptors import TabularScaler, feature_names
from ctnodule.models.features import extract_features
from ctnodule.models.fitted import FittedModel, as_maps, sklearn_matrix
from ctnodule.models.heads import SklearnHead, create_head, is_sklearn_head
from ctnodule.models.network import Classifier
from ctnodule.preprocess import Pipeline
from ctnodule.recipe import TrainConfig
from ctnodule.train.engine import fit
from ctnodule.train.labels import class_targets, effective_labels
from ctnodule.vocab import N_CLASSES, task_labels

IMAGE_BALANCERS = ("smote", "cgan", "diffusion")  # balancers that resample pixels: run before a frozen backbone's features
Result = tuple[FittedModel, list[dict], np.ndarray | None]


@dataclasses.dataclass
class AugmentedRows:
    """Extra training rows of `mask_augment`: copies of the training rows `source` (dataset row indices, whose
    labels they take) with automatic masks, preprocessed (`images`) and scaled (`extra`) like every row."""

    source: np.ndarray
    images: np.ndarray  # (M, 3, H, W)
    extra: np.ndarray | None  # (M, E)


@dataclasses.dataclass
class FoldData:
    """What every strategy starts from: the fold's fitted pipeline, all images preprocessed with it, the
    training rows that survived its noise filter, tabular inputs scaled on those rows, and the balancer."""

    cfg: TrainConfig
    fold: int
    frame: pd.DataFrame
    pipeline: Pipeline
    images: np.ndarray  # (N, 3, H, W) every row of the dataset
    rows: np.ndarray  # training rows kept by the noise filter
    y_rows: np.ndarray  # their labels
    scaler: TabularScaler | None
    extra: np.ndarray | None  # (N, E) scaled tabular inputs of every row
    backbone: Backbone
    balancer: object  # ctnodule.balance.Balancer
    checkpoint: Path
    resume: bool
    log: Callable[[str], None]
    slices: Sequence[Slice] = ()  # the raw slices (a strategy that crops its own training images needs them)
    augmented: AugmentedRows | None = None  # `mask_augment`: the training rows' automatic-mask copies

    @property
    def n_classes(self) -> int:
        return N_CLASSES[self.cfg.task]

    @property
    def n_extra(self) -> int:
        return 0 if self.extra is None else self.extra.shape[1]

    @property
    def extra_rows(self) -> np.ndarray | None:
        return None if self.extra is None else self.extra[self.rows]


class Strategy:
    """One way to fit a fold. `image_balancers`: can pixel balancers (smote, cgan) resample its training
    images; `tabular`: can it take tabular inputs beside the image."""

    name: ClassVar[str]
    image_balancers: ClassVar[bool] = True
    tabular: ClassVar[bool] = True

    @staticmethod
    def applies(cfg: TrainConfig) -> bool:
        raise NotImplementedError

    def fit(self, d: FoldData, predict_idx: np.ndarray | None) -> Result:
        raise NotImplementedError


class FrozenSklearnHead(Strategy):
    name = "frozen + scikit-learn head"

    @staticmethod
    def applies(cfg: TrainConfig) -> bool:
        return cfg.freeze_backbone and is_sklearn_head(cfg.head)

    def fit(self, d: FoldData, predict_idx: np.ndarray | None) -> Result:
        cfg, n_classes = d.cfg, d.n_classes
        feats = _frozen_features(d)
        sk_all = sklearn_matrix(feats, d.extra)
        if cfg.imbalance in IMAGE_BALANCERS:  # pixel SMOTE / cGAN act on the training images
            fb, yb, eb = _resample_images(d.balancer, d.images, feats, d.rows, d.y_rows, d.extra_rows, d.backbone,
                                          cfg, d.fold)
            Xb = sklearn_matrix(fb, eb)
        else:
            Xb, yb, _ = d.balancer.resample(sk_all[d.rows], d.y_rows, seed=_resample_seed(cfg, d.fold))
        train_frame = d.frame.iloc[d.rows]
        if d.augmented is not None:  # the recipe allows it with imbalance none/weights only: Xb are `d.rows`
            a = d.augmented
            a_feats = extract_features(a.images, d.backbone, pooled=True, tta=cfg.tta, device=cfg.device)
            Xb = np.vstack([Xb, sklearn_matrix(a_feats, a.extra)])
            yb = np.concatenate([yb, task_labels(d.frame.iloc[a.source], cfg.task)])
            train_frame = pd.concat([train_frame, d.frame.iloc[a.source]])
        w = d.balancer.class_weights(yb, n_classes)  # `weights`: the loss weighting, as sample weights
        sk_head = create_head(cfg.head, 0, n_classes, seed=cfg.seed, **cfg.head_params)
        sw = None if w is None else np.asarray(w)[yb]
        labels = effective_labels(d.frame, cfg.labels, d.log if d.fold == 0 else None)
        if labels != "maxvote":  # the readers' ratings as targets; the recipe allows class weights only
            targets = class_targets(train_frame, labels, cfg.task)
            sk_head.fit_distribution(Xb, targets if w is None else targets * np.asarray(w)[None], d.n_extra)
        elif cfg.calibration == "none":
            sk_head.fit(Xb, yb, d.n_extra, sample_weight=sw)
        else:  # Xb are the rows `d.rows` (the recipe refuses resampling balancers with calibration)
            groups = group_ids(d.frame)[d.rows]
            fit_calibrated(sk_head, Xb, yb, d.n_extra, groups, cfg.calibration, sw, seed=cfg.seed + d.fold + 1)
        head = sk_head.surrogate(sk_all[d.rows], n_classes, d.n_extra)
        info = {"surrogate_agreement": _agreement(head, feats, d.extra, sk_head, sk_all, d.rows)}
        if d.extra is not None:  # which descriptors share credit in attributions: their training correlation
            info["feature_groups"] = feature_groups(d.extra_rows, feature_names(cfg.tabular))
        model = FittedModel(cfg, d.pipeline, Classifier(d.backbone, head), d.scaler, sk_head, info)
        proba = None if predict_idx is None else sk_head.predict_proba(sk_all[predict_idx], n_classes)
        return model, [], proba


class FrozenTorchHead(Strategy):
    name = "frozen + PyTorch head"

    @staticmethod
    def applies(cfg: TrainConfig) -> bool:
        return cfg.freeze_backbone and not is_sklearn_head(cfg.head)

    def fit(self, d: FoldData, predict_idx: np.ndarray | None) -> Result:
        cfg, rows, yt = d.cfg, d.rows, d.y_rows
        feats = _frozen_features(d)
        head = create_head(cfg.head, d.backbone.num_features, d.n_classes, d.n_extra, **cfg.head_params)
        inner_tr, inner_va = inner_split(d.frame.iloc[rows], cfg, d.fold)
        maps = as_maps(feats)
        tr, va = split_batches(maps[:, rows], yt, d.extra_rows, inner_tr, inner_va, views=True)
        if cfg.imbalance in IMAGE_BALANCERS:  # pixel SMOTE / cGAN act on the inner-training images
            ex = None if d.extra_rows is None else d.extra_rows[inner_tr]
            fb, yb, eb = _resample_images(d.balancer, d.images, feats, rows[inner_tr], yt[inner_tr], ex, d.backbone,
                                          cfg, d.fold)
            tr = Batches(as_maps(fb), torch.from_numpy(yb), None if eb is None else torch.from_numpy(eb), views=True)
        else:
            tr = _balance(d.balancer, tr, cfg, d.fold, views=True)
        criterion = _criterion(d.balancer, tr.y.numpy(), d.n_classes, cfg)
        history = fit(head, tr, va, cfg, criterion, d.checkpoint, d.fold, cfg.device, d.resume, d.log)
        model = FittedModel(cfg, d.pipeline, Classifier(d.backbone, head), d.scaler)
        proba = None
        if predict_idx is not None:
            data = Batches(maps[:, predict_idx], torch.zeros(len(predict_idx), dtype=torch.long),
                           None if d.extra is None else torch.from_numpy(d.extra[predict_idx]), views=True)
            proba = predict_logits(head, data, cfg, cfg.device).softmax(1).numpy()
        return model, history, proba


class FineTune(Strategy):
    name = "fine-tune the whole network"

    @staticmethod
    def applies(cfg: TrainConfig) -> bool:
        return not cfg.freeze_backbone and not is_sklearn_head(cfg.head)

    def fit(self, d: FoldData, predict_idx: np.ndarray | None) -> Result:
        from ctnodule.models.augment import augment_batch

        cfg, yt, ex_rows = d.cfg, d.y_rows, d.extra_rows
        head = create_head(cfg.head, d.backbone.num_features, d.n_classes, d.n_extra, **cfg.head_params)
        net = Classifier(d.backbone, head)
        inner_tr, inner_va = inner_split(d.frame.iloc[d.rows], cfg, d.fold)
        data = torch.from_numpy(d.images[d.rows])
        if cfg.augment.mode == "offline":
            gen = torch.Generator().manual_seed(cfg.seed * 7919 + d.fold + 1)
            copies = [augment_batch(data[inner_tr], cfg.augment.model_copy(update={"mode": "online"}), gen)
                      for _ in range(cfg.augment.offline_copies)]
            ex_tr = None if ex_rows is None else np.concatenate([ex_rows[inner_tr]] * (len(copies) + 1))
            tr = Batches(torch.cat([data[inner_tr], *copies]), torch.from_numpy(np.tile(yt[inner_tr], len(copies) + 1)),
                         None if ex_tr is None else torch.from_numpy(ex_tr), views=False)
            va = Batches(data[inner_va], torch.from_numpy(yt[inner_va]),
                         None if ex_rows is None else torch.from_numpy(ex_rows[inner_va]), views=False)
            cfg_train = cfg.model_copy(update={"augment": cfg.augment.model_copy(update={"mode": "none"})})
        else:
            tr, va = split_batches(data, yt, ex_rows, inner_tr, inner_va, views=False)
            cfg_train = cfg
        tr = _balance(d.balancer, tr, cfg, d.fold, views=False)
        criterion = _criterion(d.balancer, tr.y.numpy(), d.n_classes, cfg)
        history = fit(net, tr, va, cfg_train, criterion, d.checkpoint, d.fold, cfg.device, d.resume, d.log)
        model = FittedModel(cfg, d.pipeline, net, d.scaler)
        proba = None
        if predict_idx is not None:
            proba = model.proba_from(d.images[predict_idx], None if d.extra is None else d.extra[predict_idx],
                                     cfg.device)
        return model, history, proba


class NoduleCNN(Strategy):
    """The nodule-scale CNN with an ordinal head, fused late with a descriptor regression (`train.image_model`)."""

    name = "nodule CNN + descriptor regression"
    image_balancers = False

    @staticmethod
    def applies(cfg: TrainConfig) -> bool:
        return cfg.head == "ordinal"

    def fit(self, d: FoldData, predict_idx: np.ndarray | None) -> Result:
        from ctnodule.train.image_model import fit_nodule_cnn

        return fit_nodule_cnn(d, predict_idx)


STRATEGIES: tuple[type[Strategy], ...] = (NoduleCNN, FrozenSklearnHead, FrozenTorchHead, FineTune)


def strategy_for(cfg: TrainConfig) -> Strategy:
    """The strategy that runs `cfg`; a recipe none can run is a `ConfigError` saying what to change."""
    for cls in STRATEGIES:
        if cls.applies(cfg):
            strategy = cls()
            if cfg.imbalance in IMAGE_BALANCERS and not strategy.image_balancers:
                raise ConfigError(f"--imbalance {cfg.imbalance} resamples images, which '{cls.name}' cannot use")
            if cfg.tabular != "none" and not strategy.tabular:
                raise ConfigError(f"--tabular {cfg.tabular}: '{cls.name}' takes no tabular inputs; use --tabular none")
            return strategy
    raise ConfigError(f"head {cfg.head!r} is a scikit-learn head: it needs a frozen backbone (--frozen), "
                      "or pick a PyTorch head (mlp, linear, seed) to fine-tune")


def _frozen_features(d: FoldData) -> np.ndarray:
    """The frozen backbone's features of every row (cached by content)."""
    for p in d.backbone.parameters():
        p.requires_grad_(False)
    return extract_features(d.images, d.backbone, pooled=d.cfg.head != "seed", tta=d.cfg.tta,
                            device=d.cfg.device, progress=True)


def inner_split(frame: pd.DataFrame, cfg: TrainConfig, fold: int) -> tuple[np.ndarray, np.ndarray]:
    """Patient-grouped (train, early-stopping) positions inside a training fold."""
    from sklearn.model_selection import GroupShuffleSplit

    try:
        return patient_holdout(frame.reset_index(drop=True), cfg.task, cfg.val_fraction, cfg.seed + 101 * (fold + 1))
    except (DataError, ConfigError):  # too few patients per class to stratify: an unstratified split works
        groups = group_ids(frame)
        if len(np.unique(groups)) < 2:
            raise DataError("a training fold holds one patient only: early stopping needs at least two "
                            "patients (add patients or lower --folds)") from None
        gss = GroupShuffleSplit(n_splits=1, test_size=cfg.val_fraction, random_state=cfg.seed + fold + 1)
        tr, va = next(gss.split(np.zeros(len(frame)), groups=groups))
        return np.sort(tr), np.sort(va)


def split_batches(x: torch.Tensor, y: np.ndarray, extra: np.ndarray | None, tr: np.ndarray, va: np.ndarray,
                   views: bool) -> tuple[Batches, Batches]:
    def part(idx: np.ndarray) -> Batches:
        xi = x[:, idx] if views else x[idx]
        return Batches(xi, torch.from_numpy(y[idx]), None if extra is None else torch.from_numpy(extra[idx]), views)

    return part(tr), part(va)


def _balance(balancer, data: Batches, cfg: TrainConfig, fold: int, views: bool) -> Batches:
    """Resample the training rows with the balancer; synthetic rows get their class's median size."""
    if cfg.imbalance in ("none", "weights", "focal", "logit_adjusted"):
        return data
    y = data.y.numpy()
    x = data.x.float().mean(0) if views else data.x
    X2, y2, synthetic = balancer.resample(x.reshape(len(y), -1).numpy() if views else x.numpy(), y,
                                          _resample_seed(cfg, fold))
    src = getattr(balancer, "sample_indices_", np.where(synthetic, -1, np.arange(len(y2))))
    extra = None if data.extra is None else _carry_extra(data.extra.numpy(), y, src, y2)
    if views:
        if synthetic.any():
            new_x = torch.from_numpy(X2.reshape((len(y2), *data.x.shape[2:])).astype(np.float32))[None]
        else:
            new_x = data.x[:, torch.from_numpy(src)]
    else:
        new_x = torch.from_numpy(np.asarray(X2, dtype=np.float32))
    return Batches(new_x, torch.from_numpy(y2.astype(np.int64)), None if extra is None else torch.from_numpy(extra), views)


def _carry_extra(ex: np.ndarray, y: np.ndarray, src: np.ndarray, y2: np.ndarray) -> np.ndarray:
    """Tabular rows of a resampled set: a real row keeps its own (`src` >= 0), a generated one (-1) gets its
    class's median — a generated image has no mask, hence no measured size or shape."""
    med = {c: np.median(ex[y == c], axis=0) for c in np.unique(y)}
    return np.stack([ex[s] if s >= 0 else med[c] for s, c in zip(src, y2)]).astype(np.float32)


def _resample_images(balancer, images: np.ndarray, feats: np.ndarray, rows: np.ndarray, y: np.ndarray,
                     extra: np.ndarray | None, backbone, cfg: TrainConfig,
                     fold: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Frozen backbone + an image balancer (`smote`, `cgan`): resample the training images `images[rows]`,
    take backbone features of the GENERATED images only (cached by content like any others) and reuse the
    cached features `feats` (V, N, ...) of the real rows. Returns (features (V, M, ...), labels (M,),
    tabular rows (M, T) or None). Only `rows` reach the balancer, so nothing generated sees another row.

    The cGAN draws all channels jointly (a 2.5D stack is generated as a stack). Generated rows get their
    class's median tabular row: the engine does not hand the balancer the masks their descriptors need.
    """
    x = images[rows]
    X2, y2, synthetic = balancer.resample(x, y, seed=_resample_seed(cfg, fold))
    src = balancer.sample_indices_
    out = np.empty((feats.shape[0], len(y2), *feats.shape[2:]), dtype=feats.dtype)
    out[:, ~synthetic] = feats[:, rows[src[~synthetic]]]
    if synthetic.any():
        fake = np.ascontiguousarray(X2[synthetic], dtype=np.float32)
        out[:, synthetic] = extract_features(fake, backbone, pooled=cfg.head != "seed", tta=cfg.tta,
                                             device=cfg.device)
    return out, y2.astype(np.int64), None if extra is None else _carry_extra(extra, y, src, y2)


def _resample_seed(cfg: TrainConfig, fold: int) -> int:
    """The balancer's seed for `fold`; the final fit (fold -1) with seed 0 would hand SMOTE an invalid -1."""
    return (cfg.seed + fold) % 2**32


def _criterion(balancer, y: np.ndarray, n_classes: int, cfg: TrainConfig) -> torch.nn.Module:
    crit = balancer.loss(y, n_classes)
    if cfg.label_smoothing and isinstance(crit, torch.nn.CrossEntropyLoss):
        crit.label_smoothing = cfg.label_smoothing
    return crit


def _agreement(head, feats: np.ndarray, extra: np.ndarray | None, sk_head: SklearnHead, sk_all: np.ndarray,
               rows: np.ndarray) -> float:
    """Share of training rows where the linear surrogate on one (un-flipped) view — what Grad-CAM
    differentiates — picks the class the scikit-learn head predicts."""
    maps = as_maps(feats[:1, rows])[0].float()
    ex = None if extra is None else torch.from_numpy(extra[rows])
    with torch.no_grad():
        sur = head.eval()(maps, ex).argmax(1).numpy()
    n_classes = head.fc.out_features
    return float((sur == sk_head.predict_proba(sk_all[rows], n_classes).argmax(1)).mean())
