"""Train one model on one training fold and predict with it: the unit the CV loop and the final fit share.

Per fold, everything that learns from data learns from the TRAINING rows only: the preprocessing
pipeline (`Pipeline.fit`, its noise filter drops noisy training slices only), the size scaler, the
balancer (resampling/loss), and early stopping, which watches a patient-grouped inner validation split
carved from the training fold (`val_fraction`) — never the fold being scored. `train_fold` prepares that
shared part (`FoldData`) and hands it to the recipe's strategy (`train.strategies`).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ctnodule.data.slice import Slice
from ctnodule.errors import DataError
from ctnodule.models.backbones import create_backbone
from ctnodule.models.descriptors import TabularScaler, tabular_features
from ctnodule.models.fitted import FittedModel
from ctnodule.preprocess import Pipeline, PreprocessConfig
from ctnodule.preprocess.inputs import to_images
from ctnodule.preprocess.segnet import LearnedSegmenter
from ctnodule.recipe import TrainConfig
from ctnodule.train.engine import seed_everything
from ctnodule.train.strategies import AugmentedRows, FoldData, strategy_for


def train_fold(cfg: TrainConfig, slices: Sequence[Slice], frame: pd.DataFrame, y: np.ndarray,
               train_idx: np.ndarray, fold: int, checkpoint: Path, resume: bool = False,
               log: Callable[[str], None] = print, predict_idx: np.ndarray | None = None,
               mask_copies: Sequence[Slice | None] | None = None, segmenter: LearnedSegmenter | None = None,
               ) -> tuple[FittedModel, list[dict], np.ndarray | None]:
    """Fit pipeline, scaler, balancer and network on rows `train_idx`.

    Returns the model, its history and the class probabilities of rows `predict_idx` (None if not asked).
    With `cfg.mask_augment`, the kept training rows' automatic-mask copies (`train.mask_augment`; `mask_copies`:
    made once for every row, else made here) join the training rows, preprocessed and scaled like them.
    Every row is preprocessed (with the pipeline fitted on the training rows): a frozen backbone's
    features of the whole dataset then share one cache entry across folds. With `cfg.segmenter` learned the
    model carries `segmenter`, or one fitted here on the training rows (a find recipe fits it on the true
    crops first, to outline the crops it judges).
    """
    from ctnodule.balance import resolve

    strategy = strategy_for(cfg)
    seed_everything(cfg.seed + fold)
    train_slices = [slices[i] for i in train_idx]
    pipeline = Pipeline.from_config(PreprocessConfig.resolve(cfg.preprocess, cfg.input_view)).fit(train_slices)
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
    augmented = _augmented(cfg, slices, rows, pipeline, scaler, mask_copies) if cfg.mask_augment else None
    data = FoldData(cfg, fold, frame, pipeline, images, rows, y[rows], scaler, extra,
                    create_backbone(cfg.backbone, cfg.weights), resolve(cfg.imbalance, **cfg.imbalance_params),
                    checkpoint, resume, log, slices, augmented)
    model, history, proba = strategy.fit(data, predict_idx)
    if cfg.segmenter == "learned":
        model.segmenter = segmenter if segmenter is not None else fit_segmenter(cfg, train_slices, fold, log)
    return model, history, proba


def _augmented(cfg: TrainConfig, slices: Sequence[Slice], rows: np.ndarray, pipeline: Pipeline,
               scaler: TabularScaler | None, mask_copies: Sequence[Slice | None] | None) -> AugmentedRows | None:
    """The training rows' automatic-mask copies (rows the segmentation refused have none; None if no row has one)."""
    from ctnodule.train.mask_augment import automatic_mask_copy

    copies = [mask_copies[i] if mask_copies is not None else automatic_mask_copy(slices[i]) for i in rows]
    have = [i for i, c in enumerate(copies) if c is not None]
    kept = [copies[i] for i in have]
    if not kept:
        return None
    images = to_images(list(pipeline.transform_many(kept, workers=1)))
    extra = None
    if scaler is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            extra = scaler.transform(tabular_features(kept, cfg.tabular))
    return AugmentedRows(np.asarray(rows)[have], images, extra)


def fold_name(fold: int) -> str:
    """How logs and errors name a training round: `fold k`, or the final model (fold -1, every sample)."""
    return f"fold {fold}" if fold >= 0 else "final model"


def fit_segmenter(cfg: TrainConfig, train_slices: Sequence[Slice], fold: int,
                  log: Callable[[str], None]) -> LearnedSegmenter:
    """The learned segmenter of this fold, fitted on its training samples only (held-out nodules are
    outlined by a network that never saw them, so the automatic-mask CV stays honest)."""
    started = time.process_time()
    segmenter = LearnedSegmenter(epochs=cfg.segmenter_epochs, seed=cfg.seed + max(fold, 0)).fit(train_slices, log)
    log(f"{fold_name(fold)}: learned segmenter fitted on {segmenter.n_train} "
        f"nodules in {time.process_time() - started:.0f} CPU-s")
    return segmenter
