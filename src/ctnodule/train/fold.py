"""Train one model on one training fold and predict with it: the unit the CV loop and the final fit share.

Per fold, everything that learns from data learns from the TRAINING rows only: the preprocessing
pipeline (`Pipeline.fit`, its noise filter drops noisy training slices only), the size scaler, the
balancer (resampling/loss), and early stopping, which watches a patient-grouped inner validation split
carved from the training fold (`val_fraction`) — never the fold being scored.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from ctnodule.data.slice import Slice
from ctnodule.errors import DataError
from ctnodule.models.backbones import create_backbone
from ctnodule.models.heads import SVMHead, create_head
from ctnodule.models.network import Classifier
from ctnodule.train.config import TrainConfig
from ctnodule.train.engine import Batches, fit, predict_logits, seed_everything
from ctnodule.train.features import extract_features
from ctnodule.train.inputs import SizeScaler, sizes_mm, to_images

N_CLASSES = {"binary": 2, "multiclass": 5}


@dataclasses.dataclass
class FoldModel:
    """A trained model with everything needed to apply it to new slices."""

    cfg: TrainConfig
    pipeline: object  # ctnodule.preprocess.Pipeline
    net: Classifier  # backbone + head (an SVM's linear surrogate when head == "svm")
    scaler: SizeScaler | None
    svm: SVMHead | None = None

    def images(self, slices: Sequence[Slice]) -> np.ndarray:
        return to_images(list(self.pipeline.transform_many(slices, workers=1)))

    def extra(self, slices: Sequence[Slice]) -> np.ndarray | None:
        return None if self.scaler is None else self.scaler.transform(sizes_mm(slices))

    def predict_proba(self, slices: Sequence[Slice], device: str = "cpu") -> np.ndarray:
        return self.proba_from(self.images(slices), self.extra(slices), device)

    def proba_from(self, images: np.ndarray, extra: np.ndarray | None, device: str = "cpu",
                   use_cache: bool = False) -> np.ndarray:
        """Class probabilities of preprocessed images (N, 3, H, W) (+ size features)."""
        cfg, n = self.cfg, len(images)
        y = torch.zeros(n, dtype=torch.long)
        ex = None if extra is None else torch.from_numpy(extra)
        if cfg.freeze_backbone:
            feats = extract_features(images, self.net.backbone, pooled=cfg.head != "seed", tta=cfg.tta,
                                     device=device, use_cache=use_cache)
            if self.svm is not None:
                return self.svm.predict_proba(_svm_matrix(feats, extra), N_CLASSES[cfg.task])
            data = Batches(_as_maps(feats), y, ex, views=True)
            return predict_logits(self.net.head, data, cfg, device).softmax(1).numpy()
        data = Batches(torch.from_numpy(images), y, ex, views=False)
        return predict_logits(self.net, data, cfg, device).softmax(1).numpy()


def train_fold(cfg: TrainConfig, slices: Sequence[Slice], frame: pd.DataFrame, y: np.ndarray,
               train_idx: np.ndarray, fold: int, checkpoint: Path, resume: bool = False,
               log: Callable[[str], None] = print) -> tuple[FoldModel, list[dict]]:
    """Fit pipeline, scaler, balancer and network on rows `train_idx`; returns the model and its history."""
    from ctnodule.balance import resolve
    from ctnodule.preprocess import Pipeline, PreprocessConfig

    seed_everything(cfg.seed + fold)
    train_slices = [slices[i] for i in train_idx]
    recipe = PreprocessConfig.default(cfg.view) if cfg.preprocess == "default" else PreprocessConfig.seed(cfg.view)
    pipeline = Pipeline.from_config(recipe).fit(train_slices)
    keep = pipeline.keep_mask(train_slices, workers=1)
    if not keep.any():
        raise DataError(f"fold {fold}: the noise filter dropped every training slice")
    train_idx = np.asarray(train_idx)[keep]
    inner_tr, inner_va = inner_split(frame.iloc[train_idx], cfg, fold)
    images = to_images(list(pipeline.transform_many([slices[i] for i in train_idx], workers=1)))
    scaler = SizeScaler().fit(sizes_mm([slices[i] for i in train_idx])) if cfg.size_feature else None
    extra = None if scaler is None else scaler.transform(sizes_mm([slices[i] for i in train_idx]))
    n_extra = 0 if extra is None else extra.shape[1]
    yt = y[train_idx]
    backbone = create_backbone(cfg.backbone, cfg.weights)
    n_classes = N_CLASSES[cfg.task]
    balancer = resolve(cfg.imbalance, **cfg.imbalance_params)
    if cfg.freeze_backbone:
        for p in backbone.parameters():
            p.requires_grad_(False)
        feats = extract_features(images, backbone, pooled=cfg.head != "seed", tta=cfg.tta, device=cfg.device,
                                 progress=True)
        if cfg.head == "svm":
            svm_x = _svm_matrix(feats, extra)
            Xb, yb, _ = balancer.resample(svm_x, yt, seed=cfg.seed + fold)
            svm = SVMHead(seed=cfg.seed, **cfg.head_params).fit(Xb, yb)
            head = svm.surrogate(svm_x, n_classes, n_extra)
            return FoldModel(cfg, pipeline, Classifier(backbone, head), scaler, svm), []
        head = create_head(cfg.head, backbone.num_features, n_classes, n_extra, **cfg.head_params)
        maps = _as_maps(feats)
        tr, va = _split_batches(maps, yt, extra, inner_tr, inner_va, views=True)
        tr = _balance(balancer, tr, cfg, fold, views=True)
        criterion = _criterion(balancer, tr.y.numpy(), n_classes, cfg)
        history = fit(head, tr, va, cfg, criterion, checkpoint, fold, cfg.device, resume, log)
        return FoldModel(cfg, pipeline, Classifier(backbone, head), scaler), history
    head = create_head(cfg.head, backbone.num_features, n_classes, n_extra, **cfg.head_params)
    net = Classifier(backbone, head)
    data = torch.from_numpy(images)
    if cfg.augment.mode == "offline":
        from ctnodule.train.augment import augment_batch

        gen = torch.Generator().manual_seed(cfg.seed * 7919 + fold)
        copies = [augment_batch(data[inner_tr], cfg.augment.model_copy(update={"mode": "online"}), gen)
                  for _ in range(cfg.augment.offline_copies)]
        extra_tr = None if extra is None else np.concatenate([extra[inner_tr]] * (len(copies) + 1))
        tr = Batches(torch.cat([data[inner_tr], *copies]), torch.from_numpy(np.tile(yt[inner_tr], len(copies) + 1)),
                     None if extra_tr is None else torch.from_numpy(extra_tr), views=False)
        va = Batches(data[inner_va], torch.from_numpy(yt[inner_va]),
                     None if extra is None else torch.from_numpy(extra[inner_va]), views=False)
        cfg_train = cfg.model_copy(update={"augment": cfg.augment.model_copy(update={"mode": "none"})})
    else:
        tr, va = _split_batches(data, yt, extra, inner_tr, inner_va, views=False)
        cfg_train = cfg
    tr = _balance(balancer, tr, cfg, fold, views=False)
    criterion = _criterion(balancer, tr.y.numpy(), n_classes, cfg)
    history = fit(net, tr, va, cfg_train, criterion, checkpoint, fold, cfg.device, resume, log)
    return FoldModel(cfg, pipeline, net, scaler), history


def inner_split(frame: pd.DataFrame, cfg: TrainConfig, fold: int) -> tuple[np.ndarray, np.ndarray]:
    """Patient-grouped (train, early-stopping) positions inside a training fold."""
    from sklearn.model_selection import GroupShuffleSplit

    from ctnodule.train.splits import patient_holdout

    try:
        return patient_holdout(frame.reset_index(drop=True), cfg.task, cfg.val_fraction, cfg.seed + 101 * (fold + 1))
    except Exception:  # too few patients per class to stratify: an unstratified patient split still works
        groups = frame["patient_id"].astype(str).to_numpy()
        if len(np.unique(groups)) < 2:
            raise DataError("a training fold holds one patient only: early stopping needs at least two "
                            "patients (add patients or lower --folds)") from None
        gss = GroupShuffleSplit(n_splits=1, test_size=cfg.val_fraction, random_state=cfg.seed + fold + 1)
        tr, va = next(gss.split(np.zeros(len(frame)), groups=groups))
        return np.sort(tr), np.sort(va)


def _split_batches(x: torch.Tensor, y: np.ndarray, extra: np.ndarray | None, tr: np.ndarray, va: np.ndarray,
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
    X2, y2, synthetic = balancer.resample(x.reshape(len(y), -1).numpy() if views else x.numpy(), y, cfg.seed + fold)
    src = getattr(balancer, "sample_indices_", np.where(synthetic, -1, np.arange(len(y2))))
    extra = None
    if data.extra is not None:
        ex = data.extra.numpy()
        med = {c: np.median(ex[y == c], axis=0) for c in np.unique(y)}
        extra = np.stack([ex[s] if s >= 0 else med[c] for s, c in zip(src, y2)]).astype(np.float32)
    if views:
        if synthetic.any():
            new_x = torch.from_numpy(X2.reshape((len(y2), *data.x.shape[2:])).astype(np.float32))[None]
        else:
            new_x = data.x[:, torch.from_numpy(src)]
    else:
        new_x = torch.from_numpy(np.asarray(X2, dtype=np.float32))
    return Batches(new_x, torch.from_numpy(y2.astype(np.int64)), None if extra is None else torch.from_numpy(extra), views)


def _criterion(balancer, y: np.ndarray, n_classes: int, cfg: TrainConfig) -> torch.nn.Module:
    crit = balancer.loss(y, n_classes)
    if cfg.label_smoothing and isinstance(crit, torch.nn.CrossEntropyLoss):
        crit.label_smoothing = cfg.label_smoothing
    return crit


def _as_maps(feats: np.ndarray) -> torch.Tensor:
    """Cached features as (V, N, F, h, w) tensors; pooled (V, N, F) become 1x1 maps."""
    t = torch.from_numpy(feats)
    return t[..., None, None] if t.ndim == 3 else t


def _svm_matrix(feats: np.ndarray, extra: np.ndarray | None) -> np.ndarray:
    """Pooled features averaged over TTA views (+ size): the SVM's input rows."""
    x = feats.astype(np.float32).mean(0)
    x = x.reshape(len(x), -1) if x.ndim == 2 else x.mean(axis=(2, 3))
    return x if extra is None else np.hstack([x, extra])
