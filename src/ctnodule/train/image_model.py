"""Training strategy "nodule CNN + descriptors": a from-scratch nodule-scale image model with an ordinal
head, fused late with a logistic regression on the mask descriptors (`head: ordinal`, preset `nodule-cnn`).

Per fold, on the training rows only:
1. the image model (`nodule_resnet*` + `OrdinalHead`) is trained on 2.5D crops at fixed mm/px
   (preprocessing recipe `nodule_cnn`) with the label mode's loss (`--labels maxvote|mean|soft`), AdamW +
   one-cycle learning rate for a fixed number of epochs (no early stopping: nothing is held out of an
   800-nodule training fold), heavy augmentation: any rotation, flips, +-zoom, z-flip of the context
   slices, Gaussian HU noise. Training crops are 1.5x larger than the model's input and centre-cropped
   after the warp, so a rotated crop has no invented corners; the centre crop equals the pipeline's crop.
2. a logistic regression (`LogRegHead`) is fitted on the standardised descriptors (`tabular`).
The prediction is the mean of the two probability vectors: equal weights, fixed in advance, so nothing
is fitted on out-of-fold predictions. Grad-CAM explains the image model (`FittedModel.net`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch

from ctnodule.errors import DataError
from ctnodule.models.augment import apply_affine
from ctnodule.models.fitted import FittedModel
from ctnodule.models.heads import LogRegHead, create_head
from ctnodule.models.network import Classifier
from ctnodule.models.ordinal import LabelLoss, ordinal_head_params
from ctnodule.preprocess import Pipeline, PreprocessConfig
from ctnodule.preprocess.inputs import to_images
from ctnodule.recipe import TrainConfig
from ctnodule.train.engine import seed_everything
from ctnodule.train.labels import target_distributions
from ctnodule.vocab import task_labels

if TYPE_CHECKING:
    from ctnodule.train.strategies import FoldData, Result

TRAIN_MARGIN = 1.5  # training crops are this much larger than the input, for rotation/zoom room
NOISE = 0.015  # Gaussian noise sd in window units (~20 HU)


def fit_nodule_cnn(d: FoldData, predict_idx: np.ndarray | None) -> Result:
    """Fit the image model and the descriptor regression on the fold's training rows; returns (model,
    history, probabilities of rows `predict_idx` or None) like every strategy."""
    cfg, rows = d.cfg, d.rows
    seed_everything(cfg.seed + d.fold)
    size = _input_side(d.pipeline)
    train_slices = [d.slices[i] for i in rows]
    wide = Pipeline.from_config(_resized(d.pipeline, round(size * TRAIN_MARGIN / 2) * 2)).fit(train_slices)
    x_train = torch.from_numpy(to_images(list(wide.transform_many(train_slices, workers=1)),
                                         with_mask=d.backbone.takes_mask))
    targets = torch.from_numpy(target_distributions(d.frame.iloc[rows], cfg.labels))
    head = create_head("ordinal", d.backbone.num_features, d.n_classes, **ordinal_head_params(cfg.head_params))
    net = Classifier(d.backbone, head)
    history = _fit(net, x_train, targets, cfg, size, d.fold, d.log)
    net.eval()
    sk_head = None
    if d.extra is not None:
        y = task_labels(d.frame, cfg.task)
        sk_head = LogRegHead(C=float(cfg.head_params.get("C", 1.0)), seed=cfg.seed).fit(d.extra[rows], y[rows])
    model = FittedModel(cfg, d.pipeline, net, d.scaler, sk_head)
    proba = None
    if predict_idx is not None:
        chosen = [d.slices[i] for i in predict_idx]
        proba = model.proba_from(model.images(chosen), None if d.extra is None else d.extra[predict_idx],
                                 cfg.device)
    return model, history, proba


def _input_side(pipeline: Pipeline) -> int:
    """The side of the square crop the pipeline's `size` step makes (the model's input)."""
    for step in pipeline.to_config().steps:
        if step.name == "size" and step.params.get("mode") == "resample" and step.params.get("size"):
            return int(step.params["size"][0])
    raise DataError("the nodule CNN needs a preprocessing recipe that resamples to a fixed square crop "
                    "(a 'size' step with mode: resample), e.g. --preprocess nodule_cnn")


def _resized(pipeline: Pipeline, side: int) -> PreprocessConfig:
    """The pipeline's recipe with a `side` x `side` crop: the same pixels, more context around them."""
    cfg = pipeline.to_config()
    steps = [s.model_copy(update={"params": {**s.params, "size": [side, side]}, "state": {}}) if s.name == "size"
             else s.model_copy(update={"state": {}}) for s in cfg.steps]
    return PreprocessConfig(view=cfg.view, steps=steps)


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
