"""Training strategy "nodule CNN + descriptors": a from-scratch nodule-scale image model with an ordinal
head, fused late with a logistic regression on the mask descriptors (`head: ordinal`, preset `nodule-cnn`).

Per fold, on the training rows only:
1. the image model (`nodule_resnet*` + `OrdinalHead`) is trained on 2.5D crops at fixed mm/px
   (`PreprocessConfig.nodule_cnn`) with the label mode's loss (`--labels maxvote|mean|soft`), AdamW +
   one-cycle learning rate for a fixed number of epochs (no early stopping: nothing is held out of an
   800-nodule training fold), heavy augmentation: any rotation, flips, +-zoom, z-flip of the context
   slices, Gaussian HU noise. Training crops are 1.5x larger than the model's input and centre-cropped
   after the warp, so a rotated crop has no invented corners; the centre crop equals the pipeline's crop.
2. a logistic regression (`LogRegHead`) is fitted on the standardised descriptors (`tabular`).
The prediction is the mean of the two probability vectors: equal weights, fixed in advance, so nothing
is fitted on out-of-fold predictions. Grad-CAM explains the image model (`FoldModel.net`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from ctnodule.data.slice import Slice
from ctnodule.errors import ConfigError, DataError
from ctnodule.models.backbones import create_backbone
from ctnodule.models.descriptors import TabularScaler, tabular_features
from ctnodule.models.heads import create_head
from ctnodule.models.network import Classifier
from ctnodule.models.ordinal import LabelLoss
from ctnodule.train.augment import apply_affine
from ctnodule.train.config import TrainConfig
from ctnodule.train.engine import Batches, predict_logits, seed_everything
from ctnodule.train.inputs import to_images
from ctnodule.train.labels import target_distributions

STRATEGY_PARAMS = ("size", "spacing_mm", "C")  # head_params of the strategy, not of the ordinal head
TRAIN_MARGIN = 1.5  # training crops are this much larger than the input, for rotation/zoom room
NOISE = 0.015  # Gaussian noise sd in window units (~20 HU)


def train_image_fold(cfg: TrainConfig, slices: Sequence[Slice], frame: pd.DataFrame, n_classes: int,
                     train_idx: np.ndarray, fold: int, log: Callable[[str], None] = print,
                     predict_idx: np.ndarray | None = None):
    """Fit the image model and the descriptor regression on rows `train_idx`; returns (FoldModel, history,
    probabilities of rows `predict_idx` or None), like `fold.train_fold`."""
    from ctnodule.models.heads import LogRegHead
    from ctnodule.preprocess import Pipeline, PreprocessConfig
    from ctnodule.train.fold import FoldModel

    if cfg.preprocess != "nodule_cnn":
        raise ConfigError("head 'ordinal' (the nodule CNN) expects preprocess: nodule_cnn (its fixed mm/px crops)")
    seed_everything(cfg.seed + fold)
    rows = np.asarray(train_idx)
    train_slices = [slices[i] for i in rows]
    size = int(cfg.head_params.get("size", 32))
    mm = float(cfg.head_params.get("spacing_mm", 1.0))
    pipeline = Pipeline.from_config(PreprocessConfig.nodule_cnn(cfg.view, size, mm)).fit(train_slices)
    big = int(round(size * TRAIN_MARGIN / 2)) * 2
    wide = Pipeline.from_config(PreprocessConfig.nodule_cnn(cfg.view, big, mm)).fit(train_slices)
    backbone = create_backbone(cfg.backbone, cfg.weights)
    with_mask = backbone.takes_mask
    x_train = torch.from_numpy(to_images(list(wide.transform_many(train_slices, workers=1)), with_mask))
    targets = torch.from_numpy(target_distributions(frame.iloc[rows], cfg.labels))
    head = create_head("ordinal", backbone.num_features, n_classes, **ordinal_head_params(cfg))
    net = Classifier(backbone, head)
    history = _fit(net, x_train, targets, cfg, size, fold, log)
    net.eval()

    scaler, sk_head = None, None
    if cfg.tabular != "none":
        table = tabular_features(slices, cfg.tabular)
        scaler = TabularScaler().fit(table[rows])
        with warnings.catch_warnings():  # missing sizes are filled; warned where a user predicts
            warnings.simplefilter("ignore", UserWarning)
            extra = scaler.transform(table)
        y = _task_labels(frame, n_classes)
        sk_head = LogRegHead(C=float(cfg.head_params.get("C", 1.0)), seed=cfg.seed).fit(extra[rows], y[rows])
    model = FoldModel(cfg, pipeline, net, scaler, sk_head)
    proba = None
    if predict_idx is not None:
        chosen = [slices[i] for i in predict_idx]
        proba = model.proba_from(model.images(chosen), model.extra(chosen), cfg.device)
    return model, history, proba


def ordinal_head_params(cfg: TrainConfig) -> dict:
    """`cfg.head_params` without the strategy's own keys (crop size, mm/px, the regression's C)."""
    return {k: v for k, v in cfg.head_params.items() if k not in STRATEGY_PARAMS}


def image_proba(net: Classifier, images: np.ndarray, cfg: TrainConfig, device: str = "cpu") -> np.ndarray:
    """The image model's class probabilities (mean over the flip views with `cfg.tta`)."""
    data = Batches(torch.from_numpy(images), torch.zeros(len(images), dtype=torch.long), None, views=False)
    return predict_logits(net, data, cfg, device).softmax(1).numpy()


def _task_labels(frame: pd.DataFrame, n_classes: int) -> np.ndarray:
    score = pd.to_numeric(frame["malignancy"], errors="coerce").to_numpy()
    if np.isnan(score).any():
        raise DataError("column 'malignancy' must hold 1..5 for every row to train on")
    return (score >= 4).astype(int) if n_classes == 2 else score.astype(int) - 1


def _fit(net: Classifier, x: torch.Tensor, targets: torch.Tensor, cfg: TrainConfig, size: int, fold: int,
         log: Callable[[str], None]) -> list[dict]:
    gen = torch.Generator().manual_seed(cfg.seed * 1000 + fold)
    net.to(memory_format=torch.channels_last)  # oneDNN's faster CPU kernels (1.35x measured)
    steps = max(1, int(np.ceil(len(x) / cfg.batch_size)))
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps * cfg.epochs, pct_start=0.15)
    loss_fn = LabelLoss(cfg.labels)
    history = []
    for epoch in range(1, cfg.epochs + 1):
        net.train()
        order = torch.randperm(len(x), generator=gen)
        total, seen = 0.0, 0
        for s in range(steps):
            idx = order[s * cfg.batch_size:(s + 1) * cfg.batch_size]
            if len(idx) < 2:  # a batch of one breaks BatchNorm in train mode
                continue
            xb = _centre(augment(x[idx], cfg, gen), size).contiguous(memory_format=torch.channels_last)
            loss = loss_fn(net.head.cumulative(net.backbone(xb)), targets[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
            seen += len(idx)
        history.append({"epoch": epoch, "fold": fold, "train_loss": total / max(seen, 1), "val_loss": float("nan"),
                        "train_acc": float("nan"), "val_acc": float("nan"), "lr": opt.param_groups[0]["lr"]})
    log(f"fold {fold}: image model trained {cfg.epochs} epochs, last loss {history[-1]['train_loss']:.4f}")
    return history


def augment(x: torch.Tensor, cfg: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    """Any rotation (`augment.rotation` degrees), h-flip, zoom +-`augment.zoom`, z-flip of the 3 context
    slices and HU noise on the image channels; a mask channel (4th) follows the warp only."""
    n = x.shape[0]
    a = cfg.augment
    ang = (torch.rand(n, generator=gen) * 2 - 1) * a.rotation * np.pi / 180
    scale = 1 + (torch.rand(n, generator=gen) * 2 - 1) * a.zoom
    flip = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0) if a.hflip else torch.ones(n)
    cos, sin = torch.cos(ang) / scale, torch.sin(ang) / scale
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = cos * flip, -sin, sin * flip, cos
    x = apply_affine(x, theta)
    img, rest = x[:, :3], x[:, 3:]
    z = torch.rand(n, generator=gen) < 0.5
    img = torch.where(z[:, None, None, None], img.flip(1), img)
    img = img + NOISE * torch.randn(img.shape, generator=gen)
    return torch.cat([img, (rest > 0.5).to(img.dtype)], dim=1)


def _centre(x: torch.Tensor, size: int) -> torch.Tensor:
    o = (x.shape[-1] - size) // 2
    return x[..., o:o + size, o:o + size]
