"""The run folder: every path in one place, model checkpoints, and `load_run(run_dir) -> Predictor`.

Layout (stable names; predict/evaluate/explain need nothing outside the folder)::

    RUN/config.yaml              resolved TrainConfig + what happened (weights loaded, seed, versions)
    RUN/pipeline.yaml            the final model's fitted preprocessing (fitted on all training data)
    RUN/splits/fold-K.csv        patient-grouped splits (sample_id, patient_id, split)
    RUN/history.csv              epoch, fold, train_loss, val_loss, train_acc, val_acc, lr (fold -1 = final)
    RUN/oof_predictions.csv      sample_id, patient_id, fold, y_true, proba_0..proba_{C-1}
    RUN/metrics.json             pooled out-of-fold metrics, CIs, baselines, per-fold metrics
    RUN/attributions.csv         the final model's attributions on its training nodules (scikit-learn heads)
    RUN/model.pt                 the final model (trained on all data, same recipe as each fold)
    RUN/checkpoints/fold-K.pt    each fold's model + its validation predictions (resume skips done folds)
    RUN/checkpoints/*.last.pt    the per-epoch training state (resume continues mid-fold)
    RUN/figures/, RUN/report.html

The final model is ONE network refitted on all data (not the fold ensemble): one pipeline, one set of
weights, one `nn.Module` for Grad-CAM. The out-of-fold metrics estimate how that recipe generalises.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

import ctnodule
from ctnodule.atomic import atomic_path
from ctnodule.data.slice import Slice
from ctnodule.errors import RunError
from ctnodule.models.backbones import create_backbone
from ctnodule.models.descriptors import TabularScaler
from ctnodule.models.heads import create_head, is_sklearn_head
from ctnodule.models.network import Classifier
from ctnodule.train.config import TrainConfig
from ctnodule.train.fold import N_CLASSES, FoldModel


@dataclasses.dataclass(frozen=True)
class RunPaths:
    """Every file of a run folder (nnU-Net's rule: one function builds every results path)."""

    root: Path

    config = property(lambda self: self.root / "config.yaml")
    pipeline = property(lambda self: self.root / "pipeline.yaml")
    history = property(lambda self: self.root / "history.csv")
    oof = property(lambda self: self.root / "oof_predictions.csv")
    metrics = property(lambda self: self.root / "metrics.json")
    attributions = property(lambda self: self.root / "attributions.csv")
    model = property(lambda self: self.root / "model.pt")
    report = property(lambda self: self.root / "report.html")
    figures = property(lambda self: self.root / "figures")
    checkpoints = property(lambda self: self.root / "checkpoints")

    def fold_model(self, fold: int) -> Path:
        return self.checkpoints / f"fold-{fold}.pt"

    def fold_state(self, fold: int) -> Path:
        """Per-epoch training state of fold `fold` (-1 = the final model)."""
        name = "final" if fold < 0 else f"fold-{fold}"
        return self.checkpoints / f"{name}.last.pt"


def save_model(path: Path, model: FoldModel, extra: dict[str, Any] | None = None) -> None:
    """Write a model checkpoint atomically. A frozen pretrained backbone is rebuilt from its weights
    source on load (checked by name + weights status), so only the head is stored."""
    net = model.net
    frozen_pretrained = model.cfg.freeze_backbone and net.backbone.pretrained
    state = net.head.state_dict() if frozen_pretrained else net.state_dict()
    blob = {
        "format_version": ctnodule.FORMAT_VERSION, "config": model.cfg.model_dump(mode="json"),
        "weights_status": net.backbone.weights_status, "state": state, "head_only": frozen_pretrained,
        "pipeline": model.pipeline.to_config().model_dump(mode="json"),
        "scaler": None if model.scaler is None else model.scaler.state(), "sk_head": model.sk_head,
        "n_extra": net.n_extra, **(extra or {}),
    }
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)


def load_model(path: Path) -> tuple[FoldModel, dict[str, Any]]:
    """Read a checkpoint written by `save_model`; bad files are `RunError`s naming the fix."""
    from ctnodule.preprocess import Pipeline, PreprocessConfig

    if not path.is_file():
        raise RunError(f"{path}: checkpoint not found; was the run trained completely? (retrain with "
                       "`ctnodule train ... --resume`)")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise RunError(f"{path}: corrupt checkpoint ({type(exc).__name__}); retrain (`--resume` redoes "
                       "only missing parts) or restore the file") from exc
    if not isinstance(blob, dict) or "format_version" not in blob:
        raise RunError(f"{path}: not a ctnodule checkpoint")
    if blob["format_version"] != ctnodule.FORMAT_VERSION:
        raise RunError(f"{path}: written by run-folder format {blob['format_version']}, this ctnodule reads "
                       f"format {ctnodule.FORMAT_VERSION}; use the matching ctnodule version or retrain")
    cfg = TrainConfig.model_validate(blob["config"])
    import warnings

    with warnings.catch_warnings():  # the no-weights warning was given at training time and is recorded
        warnings.simplefilter("ignore", UserWarning)
        backbone = create_backbone(cfg.backbone, cfg.weights if blob["head_only"] else "none")
    if blob["head_only"] and backbone.weights_status != blob["weights_status"]:
        raise RunError(f"{path}: the model was trained on backbone weights '{blob['weights_status']}' but "
                       f"'{backbone.weights_status}' are available now; install them or retrain")
    n_classes = N_CLASSES[cfg.task]
    sk = is_sklearn_head(cfg.head)
    head_name = "linear" if sk else cfg.head
    params = {"dropout": 0.0} if sk else cfg.head_params
    head = create_head(head_name, backbone.num_features, n_classes, blob["n_extra"], **params)
    net = Classifier(backbone, head)
    try:
        (head if blob["head_only"] else net).load_state_dict(blob["state"])
    except RuntimeError as exc:
        raise RunError(f"{path}: weights do not fit the {cfg.backbone}/{cfg.head} model ({exc})") from exc
    net.backbone.weights_status = blob["weights_status"]
    net.eval()
    pipeline = Pipeline.from_config(PreprocessConfig.model_validate(blob["pipeline"]))
    scaler = None if blob["scaler"] is None else TabularScaler.from_state(blob["scaler"])
    info = {k: blob[k] for k in ("surrogate_agreement", "feature_groups") if k in blob}
    return FoldModel(cfg, pipeline, net, scaler, blob["sk_head"], info), blob


class Predictor:
    """A trained run, ready to apply: `predict_proba(slices)`, `prepare(slices)`, `.model`, ...

    `.model` is the `Classifier` (backbone + head; an svm/logreg run exposes its distilled linear
    surrogate, whose agreement with the real head is `.info["surrogate_agreement"]`) mapping
    `prepare(slices)` to logits. When the model
    also takes the nodule size, `prepare` binds those sizes to `.model` for that batch, so Grad-CAM's
    one-argument `model(x)` call works; the input tensor is [0, 1] images, normalised inside the model.
    """

    def __init__(self, run_dir: Path, fold_model: FoldModel, config: dict[str, Any], info: dict[str, Any]):
        self.run_dir = run_dir
        self.info = info
        self._fm = fold_model
        self.config = config
        self.task = fold_model.cfg.task
        self.view = fold_model.cfg.view
        self.class_names = list(config.get("class_names") or class_names_for(self.task))
        self.channels = fold_model.cfg.channels
        self.device = "cpu"

    @property
    def model(self) -> Classifier:
        return self._fm.net

    @property
    def has_sklearn_head(self) -> bool:
        """True when a scikit-learn head decides (attributions available via `attribute`)."""
        return self._fm.sk_head is not None

    @property
    def pipeline(self):
        return self._fm.pipeline

    def load_slices(self, dataset) -> list[Slice]:
        """A `SliceDataset`'s samples of this run's view, as the run was trained on them (2.5D stacks
        where it used them): the input `prepare`/`predict_proba` expect for dataset samples."""
        from ctnodule.train.inputs import load_slices

        return load_slices(dataset.view(self.view), self.channels)

    def prepare(self, slices: Sequence[Slice]) -> torch.Tensor:
        """Preprocessed (N, 3, H, W) float32 images in [0, 1] — exactly what the network sees."""
        x = torch.from_numpy(self._fm.images(self._channels(slices)))
        extra = self._fm.extra(slices)
        self.model.bind_extra(None if extra is None else torch.from_numpy(extra))
        return x

    def predict_proba(self, slices: Sequence[Slice]) -> np.ndarray:
        """(N, C) class probabilities (with the run's TTA), in the order given."""
        slices = self._channels(slices)
        return self._fm.proba_from(self._fm.images(slices), self._fm.extra(slices), self.device)

    def image_forward(self, s: Slice, target: int):
        """f(images (N, 3, H, W) in [0, 1]) -> (N,) P(`target`) with `s`'s descriptors held as measured: the
        model as occlusion and deletion tests perturb it (pixels only), through its real head and TTA."""
        extra = self._fm.extra(self._channels([s]))

        def forward(images: np.ndarray) -> np.ndarray:
            rows = None if extra is None else np.repeat(extra, len(images), axis=0)
            return self._fm.proba_from(np.asarray(images, dtype=np.float32), rows, self.device)[:, target]

        return forward

    def attribute(self, slices: Sequence[Slice], top: int = 3):
        """(Attribution, one line of top reasons per slice, measured descriptors (N, D)) of the run's
        scikit-learn head; see `ctnodule.models.attribution`. Runs trained before attributions existed have
        no descriptor groups stored: each descriptor is then its own group."""
        from ctnodule.errors import RunError
        from ctnodule.models.attribution import attribute, reasons
        from ctnodule.models.descriptors import feature_names, tabular_features

        if self._fm.sk_head is None:
            raise RunError(f"{self.run_dir}: attributions need a scikit-learn head (logreg, svm); this run's head "
                           f"is {self._fm.cfg.head!r}")
        slices = self._channels(slices)
        names = feature_names(self._fm.cfg.tabular)
        attr = attribute(self._fm.sk_head, self._fm.head_inputs(slices, self.device), names,
                         self.info.get("feature_groups"))
        raw = tabular_features(slices, self._fm.cfg.tabular)
        return attr, reasons(attr, raw, names, self.class_names, top), raw

    def _channels(self, slices: Sequence[Slice]) -> list[Slice]:
        """A 2.5D model given single slices (e.g. one DICOM file) sees the slice repeated: warned once."""
        slices = list(slices)
        if self._fm.cfg.channels == "context" and any(s.array.ndim == 2 for s in slices) and \
                self.config.get("used_context", False):
            import warnings

            warnings.warn("this model was trained on 3 neighbouring slices (2.5D); single slices are fed "
                          "as 3 copies, which it has not seen: expect weaker predictions", UserWarning,
                          stacklevel=3)
        return slices


def load_run(run_dir: str | Path) -> Predictor:
    """Open a finished run folder for prediction; errors name what is missing or incompatible."""
    paths = RunPaths(Path(run_dir))
    if not paths.root.is_dir():
        raise RunError(f"{paths.root}: run folder not found")
    if not paths.config.is_file():
        raise RunError(f"{paths.root}: no config.yaml; not a ctnodule run folder")
    config = yaml.safe_load(paths.config.read_text(encoding="utf-8")) or {}
    version = config.get("format_version")
    if version != ctnodule.FORMAT_VERSION:
        raise RunError(f"{paths.root}: run folder format {version}, this ctnodule reads format "
                       f"{ctnodule.FORMAT_VERSION}; use the matching ctnodule version or retrain")
    fold_model, blob = load_model(paths.model)
    return Predictor(paths.root, fold_model, config, fold_model.info)


def class_names_for(task: str) -> list[str]:
    from ctnodule.data.manifest import CLASS_NAMES

    return list(CLASS_NAMES[task])
