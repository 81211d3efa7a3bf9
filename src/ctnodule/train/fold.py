"""Train one model on one training fold and predict with it: the unit the CV loop and the final fit share.

Per fold, everything that learns from data learns from the TRAINING rows only: the preprocessing
pipeline (`Pipeline.fit`, its noise filter drops noisy training slices only), the size scaler, the
balancer (resampling/loss), and early stopping, which watches a patient-grouped inner validation split
carved from the training fold (`val_fraction`) — never the fold being scored.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ctnodule.data.slice import Slice
from ctnodule.errors import ConfigError, DataError
from ctnodule.models.backbones import create_backbone
from ctnodule.models.attribution import feature_groups
from ctnodule.models.calibration import fit_calibrated
from ctnodule.models.descriptors import TabularScaler, feature_names, tabular_features
from ctnodule.models.heads import SklearnHead, create_head, is_sklearn_head
from ctnodule.models.network import Classifier
from ctnodule.train.config import TrainConfig
from ctnodule.train.engine import Batches, fit, predict_logits, seed_everything
from ctnodule.train.features import extract_features
from ctnodule.train.inputs import to_images

N_CLASSES = {"binary": 2, "multiclass": 5}
IMAGE_BALANCERS = ("smote", "cgan")  # balancers that resample pixels: run before a frozen backbone's features


@dataclasses.dataclass
class FoldModel:
    """A trained model with everything needed to apply it to new slices."""

    cfg: TrainConfig
    pipeline: object  # ctnodule.preprocess.Pipeline
    net: Classifier  # backbone + head (a scikit-learn head's linear surrogate for svm/logreg)
    scaler: TabularScaler | None
    sk_head: SklearnHead | None = None  # a scikit-learn head (svm, logreg); `net` then holds its surrogate
    info: dict = dataclasses.field(default_factory=dict)  # facts recorded in the checkpoint (e.g. agreement)

    def images(self, slices: Sequence[Slice]) -> np.ndarray:
        return to_images(list(self.pipeline.transform_many(slices, workers=1)))

    def extra(self, slices: Sequence[Slice]) -> np.ndarray | None:
        return None if self.scaler is None else self.scaler.transform(tabular_features(slices, self.cfg.tabular))

    def predict_proba(self, slices: Sequence[Slice], device: str = "cpu") -> np.ndarray:
        return self.proba_from(self.images(slices), self.extra(slices), device)

    def head_inputs(self, slices: Sequence[Slice], device: str = "cpu", use_cache: bool = False) -> np.ndarray:
        """The rows a scikit-learn head reads: TTA-averaged pooled image features | standardised descriptors."""
        feats = extract_features(self.images(slices), self.net.backbone, pooled=True, tta=self.cfg.tta,
                                 device=device, use_cache=use_cache)
        return _sklearn_matrix(feats, self.extra(slices))

    def proba_from(self, images: np.ndarray, extra: np.ndarray | None, device: str = "cpu",
                   use_cache: bool = False) -> np.ndarray:
        """Class probabilities of preprocessed images (N, 3, H, W) (+ size features)."""
        cfg, n = self.cfg, len(images)
        y = torch.zeros(n, dtype=torch.long)
        ex = None if extra is None else torch.from_numpy(extra)
        if cfg.freeze_backbone:
            feats = extract_features(images, self.net.backbone, pooled=cfg.head != "seed", tta=cfg.tta,
                                     device=device, use_cache=use_cache)
            if self.sk_head is not None:
                return self.sk_head.predict_proba(_sklearn_matrix(feats, extra), N_CLASSES[cfg.task])
            data = Batches(_as_maps(feats), y, ex, views=True)
            return predict_logits(self.net.head, data, cfg, device).softmax(1).numpy()
        data = Batches(torch.from_numpy(images), y, ex, views=False)
        return predict_logits(self.net, data, cfg, device).softmax(1).numpy()


def train_fold(cfg: TrainConfig, slices: Sequence[Slice], frame: pd.DataFrame, y: np.ndarray,
               train_idx: np.ndarray, fold: int, checkpoint: Path, resume: bool = False,
               log: Callable[[str], None] = print, predict_idx: np.ndarray | None = None,
               ) -> tuple[FoldModel, list[dict], np.ndarray | None]:
    """Fit pipeline, scaler, balancer and network on rows `train_idx`.

    Returns the model, its history and the class probabilities of rows `predict_idx` (None if not asked).
    Every row is preprocessed (with the pipeline fitted on the training rows): a frozen backbone's
    features of the whole dataset then share one cache entry across folds.
    """
    from ctnodule.balance import resolve
    from ctnodule.preprocess import Pipeline, PreprocessConfig

    seed_everything(cfg.seed + fold)
    train_slices = [slices[i] for i in train_idx]
    recipe = PreprocessConfig.default(cfg.view) if cfg.preprocess == "default" else PreprocessConfig.seed(cfg.view)
    pipeline = Pipeline.from_config(recipe).fit(train_slices)
    keep = pipeline.keep_mask(train_slices, workers=1)
    if not keep.any():
        raise DataError(f"fold {fold}: the noise filter dropped every training slice")
    rows = np.asarray(train_idx)[keep]
    images = to_images(list(pipeline.transform_many(slices, workers=1)))
    scaler, extra = None, None
    if cfg.tabular != "none":
        table = tabular_features(slices, cfg.tabular)
        scaler = TabularScaler().fit(table[rows])
        with warnings.catch_warnings():  # missing sizes are filled; warned where a user predicts
            warnings.simplefilter("ignore", UserWarning)
            extra = scaler.transform(table)
    n_extra = 0 if extra is None else extra.shape[1]
    extra_rows = None if extra is None else extra[rows]
    yt = y[rows]
    backbone = create_backbone(cfg.backbone, cfg.weights)
    n_classes = N_CLASSES[cfg.task]
    balancer = resolve(cfg.imbalance, **cfg.imbalance_params)
    if cfg.freeze_backbone:
        for p in backbone.parameters():
            p.requires_grad_(False)
        feats = extract_features(images, backbone, pooled=cfg.head != "seed", tta=cfg.tta, device=cfg.device,
                                 progress=True)
        if is_sklearn_head(cfg.head):
            sk_all = _sklearn_matrix(feats, extra)
            if cfg.imbalance in IMAGE_BALANCERS:  # pixel SMOTE / cGAN act on the training images
                fb, yb, eb = _resample_images(balancer, images, feats, rows, yt, extra_rows, backbone, cfg, fold, log)
                Xb = _sklearn_matrix(fb, eb)
            else:
                Xb, yb, _ = balancer.resample(sk_all[rows], yt, seed=_resample_seed(cfg, fold))
            w = balancer.class_weights(yb, n_classes)  # `weights`: the loss weighting, as sample weights
            sk_head = create_head(cfg.head, 0, n_classes, seed=cfg.seed, **cfg.head_params)
            sw = None if w is None else np.asarray(w)[yb]
            if cfg.calibration == "none":
                sk_head.fit(Xb, yb, n_extra, sample_weight=sw)
            else:  # Xb are the rows `rows` (resampling balancers are refused by the config)
                groups = frame["patient_id"].astype(str).to_numpy()[rows]
                fit_calibrated(sk_head, Xb, yb, n_extra, groups, cfg.calibration, sw, seed=cfg.seed + fold + 1)
            head = sk_head.surrogate(sk_all[rows], n_classes, n_extra)
            info = {"surrogate_agreement": _agreement(head, feats, extra, sk_head, sk_all, rows)}
            if extra is not None:  # which descriptors share credit in attributions: their training correlation
                info["feature_groups"] = feature_groups(extra[rows], feature_names(cfg.tabular))
            model = FoldModel(cfg, pipeline, Classifier(backbone, head), scaler, sk_head, info)
            proba = None if predict_idx is None else sk_head.predict_proba(sk_all[predict_idx], n_classes)
            return model, [], proba
        head = create_head(cfg.head, backbone.num_features, n_classes, n_extra, **cfg.head_params)
        inner_tr, inner_va = inner_split(frame.iloc[rows], cfg, fold)
        maps = _as_maps(feats)
        tr, va = _split_batches(maps[:, rows], yt, extra_rows, inner_tr, inner_va, views=True)
        if cfg.imbalance in IMAGE_BALANCERS:  # pixel SMOTE / cGAN act on the inner-training images
            fb, yb, eb = _resample_images(balancer, images, feats, rows[inner_tr], yt[inner_tr],
                                          None if extra_rows is None else extra_rows[inner_tr], backbone, cfg, fold,
                                          log)
            tr = Batches(_as_maps(fb), torch.from_numpy(yb), None if eb is None else torch.from_numpy(eb), views=True)
        else:
            tr = _balance(balancer, tr, cfg, fold, views=True)
        criterion = _criterion(balancer, tr.y.numpy(), n_classes, cfg)
        history = fit(head, tr, va, cfg, criterion, checkpoint, fold, cfg.device, resume, log)
        model = FoldModel(cfg, pipeline, Classifier(backbone, head), scaler)
        proba = None
        if predict_idx is not None:
            data = Batches(maps[:, predict_idx], torch.zeros(len(predict_idx), dtype=torch.long),
                           None if extra is None else torch.from_numpy(extra[predict_idx]), views=True)
            proba = predict_logits(head, data, cfg, cfg.device).softmax(1).numpy()
        return model, history, proba
    head = create_head(cfg.head, backbone.num_features, n_classes, n_extra, **cfg.head_params)
    net = Classifier(backbone, head)
    inner_tr, inner_va = inner_split(frame.iloc[rows], cfg, fold)
    data = torch.from_numpy(images[rows])
    if cfg.augment.mode == "offline":
        from ctnodule.train.augment import augment_batch

        gen = torch.Generator().manual_seed(cfg.seed * 7919 + fold + 1)
        copies = [augment_batch(data[inner_tr], cfg.augment.model_copy(update={"mode": "online"}), gen)
                  for _ in range(cfg.augment.offline_copies)]
        ex_tr = None if extra_rows is None else np.concatenate([extra_rows[inner_tr]] * (len(copies) + 1))
        tr = Batches(torch.cat([data[inner_tr], *copies]), torch.from_numpy(np.tile(yt[inner_tr], len(copies) + 1)),
                     None if ex_tr is None else torch.from_numpy(ex_tr), views=False)
        va = Batches(data[inner_va], torch.from_numpy(yt[inner_va]),
                     None if extra_rows is None else torch.from_numpy(extra_rows[inner_va]), views=False)
        cfg_train = cfg.model_copy(update={"augment": cfg.augment.model_copy(update={"mode": "none"})})
    else:
        tr, va = _split_batches(data, yt, extra_rows, inner_tr, inner_va, views=False)
        cfg_train = cfg
    tr = _balance(balancer, tr, cfg, fold, views=False)
    criterion = _criterion(balancer, tr.y.numpy(), n_classes, cfg)
    history = fit(net, tr, va, cfg_train, criterion, checkpoint, fold, cfg.device, resume, log)
    model = FoldModel(cfg, pipeline, net, scaler)
    proba = None
    if predict_idx is not None:
        proba = model.proba_from(images[predict_idx], None if extra is None else extra[predict_idx], cfg.device)
    return model, history, proba


def inner_split(frame: pd.DataFrame, cfg: TrainConfig, fold: int) -> tuple[np.ndarray, np.ndarray]:
    """Patient-grouped (train, early-stopping) positions inside a training fold."""
    from sklearn.model_selection import GroupShuffleSplit

    from ctnodule.train.splits import patient_holdout

    try:
        return patient_holdout(frame.reset_index(drop=True), cfg.task, cfg.val_fraction, cfg.seed + 101 * (fold + 1))
    except (DataError, ConfigError):  # too few patients per class to stratify: an unstratified split works
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
                     extra: np.ndarray | None, backbone, cfg: TrainConfig, fold: int,
                     log: Callable[[str], None]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Frozen backbone + an image balancer (`smote`, `cgan`): resample the training images `images[rows]`,
    take backbone features of the GENERATED images only (cached by content like any others) and reuse the
    cached features `feats` (V, N, ...) of the real rows. Returns (features (V, M, ...), labels (M,),
    tabular rows (M, T) or None). Only `rows` reach the balancer, so nothing generated sees another row.

    The cGAN draws single grey slices: it is trained on the centre channel, and a generated slice fills every
    channel (with 2.5D context the real rows keep their neighbour slices; the generated ones have none).
    """
    x = images[rows]
    if cfg.imbalance == "cgan" and x.shape[1] > 1:
        mid = x.shape[1] // 2
        if not np.array_equal(x, np.broadcast_to(x[:, mid:mid + 1], x.shape)):
            log(f"fold {fold}: cgan models single slices; generated images repeat one slice over the "
                f"{x.shape[1]} context channels")
        x = np.ascontiguousarray(x[:, mid:mid + 1])
    X2, y2, synthetic = balancer.resample(x, y, seed=_resample_seed(cfg, fold))
    src = balancer.sample_indices_
    out = np.empty((feats.shape[0], len(y2), *feats.shape[2:]), dtype=feats.dtype)
    out[:, ~synthetic] = feats[:, rows[src[~synthetic]]]
    if synthetic.any():
        fake = np.ascontiguousarray(X2[synthetic], dtype=np.float32)
        if fake.shape[1] != images.shape[1]:
            fake = np.ascontiguousarray(np.repeat(fake, images.shape[1], axis=1))
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
    maps = _as_maps(feats[:1, rows])[0].float()
    ex = None if extra is None else torch.from_numpy(extra[rows])
    with torch.no_grad():
        sur = head.eval()(maps, ex).argmax(1).numpy()
    n_classes = head.fc.out_features
    return float((sur == sk_head.predict_proba(sk_all[rows], n_classes).argmax(1)).mean())


def _as_maps(feats: np.ndarray) -> torch.Tensor:
    """Cached features as (V, N, F, h, w) tensors; pooled (V, N, F) become 1x1 maps."""
    t = torch.from_numpy(feats)
    return t[..., None, None] if t.ndim == 3 else t


def _sklearn_matrix(feats: np.ndarray, extra: np.ndarray | None) -> np.ndarray:
    """Pooled features averaged over TTA views (+ tabular): the scikit-learn head's input rows."""
    x = feats.astype(np.float32).mean(0)
    x = x.reshape(len(x), -1) if x.ndim == 2 else x.mean(axis=(2, 3))
    return x if extra is None else np.hstack([x, extra])
