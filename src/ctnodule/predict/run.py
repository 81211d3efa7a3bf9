"""`load_run(run_dir) -> Predictor`: a finished run folder, ready to apply to new slices.

Everything comes from the run folder (`ctnodule.runfolder`): the recipe, the fitted preprocessing, the final
model. The `Predictor` is the one place that applies a run's preprocessing to new data.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ctnodule.data.slice import Slice
from ctnodule.errors import RunError
from ctnodule.models.fitted import FittedModel
from ctnodule.models.network import Classifier
from ctnodule.preprocess.inputs import load_slices
from ctnodule.runfolder import RunPaths, read_config
from ctnodule.vocab import class_names


class Predictor:
    """A trained run, ready to apply: `predict_proba(slices)`, `prepare(slices)`, `.model`, ...

    `.model` is the `Classifier` (backbone + head; an svm/logreg run exposes its distilled linear
    surrogate, whose agreement with the real head is `.info["surrogate_agreement"]`) mapping
    `prepare(slices)` to logits. When the model
    also takes the nodule size, `prepare` binds those sizes to `.model` for that batch, so Grad-CAM's
    one-argument `model(x)` call works; the input tensor is [0, 1] images, normalised inside the model.
    """

    def __init__(self, run_dir: Path, fold_model: FittedModel, config: dict[str, Any], info: dict[str, Any]):
        self.run_dir = run_dir
        self.info = info
        self._fm = fold_model
        self.config = config
        self.task = fold_model.cfg.task
        self.view = fold_model.cfg.view
        self.class_names = list(config.get("class_names") or class_names(self.task))
        self.channels = fold_model.cfg.channels
        self._device = "cpu"

    @property
    def device(self) -> str:
        return self._device

    @device.setter
    def device(self, device: str) -> None:
        """Where the network runs. The whole network (backbone and head) moves there: feature extraction
        moves the backbone by itself, but Grad-CAM's own forward pass needs the head on its input's device
        too (the viewer, `explain ct` and `explain` all set this and nothing else)."""
        self._device = device
        self._fm.net.to(device)

    @property
    def fold_model(self) -> FittedModel:
        """The trained parts (recipe, pipeline, network, scaler, scikit-learn head), e.g. for export."""
        return self._fm

    @property
    def model(self) -> Classifier:
        return self._fm.net

    @property
    def has_sklearn_head(self) -> bool:
        """True when a scikit-learn head decides (attributions available via `attribute`)."""
        return self._fm.has_sklearn_head

    @property
    def pipeline(self):
        return self._fm.pipeline

    @property
    def segmenter(self):
        """The run's learned seeded segmenter (`preprocess.segnet.LearnedSegmenter`), or None: nodules located
        in a CT are then outlined by the classical one alone (and by it first in either case)."""
        return self._fm.segmenter

    def load_slices(self, dataset) -> list[Slice]:
        """A `SliceDataset`'s samples of this run's view, as the run was trained on them (2.5D stacks
        where it used them): the input `prepare`/`predict_proba` expect for dataset samples."""
        return load_slices(dataset.view(self.view), self.channels)

    @property
    def needs_mask(self) -> bool:
        """The model reads the nodule's size (and shape, density) from its mask: without one it would
        only guess, so `prepare`/`predict_proba` refuse such samples."""
        return self._fm.cfg.tabular != "none"

    def check_masks(self, slices: Sequence[Slice]) -> None:
        """`DataError` naming the samples a mask-using model cannot judge (no mask, or no diameter for
        a size-only model)."""
        from ctnodule.errors import DataError
        from ctnodule.models.descriptors import diameter_mm

        if not self.needs_mask or self._fm.finder is not None:  # a finder segments the nodule itself
            return
        full = self._fm.cfg.tabular == "descriptors"
        missing = [str(s.meta.get("sample_id", f"#{i}")) for i, s in enumerate(slices)
                   if (full and (s.mask is None or not np.any(s.mask))) or not np.isfinite(diameter_mm(s))]
        if missing:
            raise DataError(f"this model uses the nodule's {self._fm.cfg.tabular} measured from its mask, and "
                            f"{len(missing)} sample(s) have no mask ({', '.join(missing[:3])}"
                            f"{', ...' if len(missing) > 3 else ''}); give --mask, or a CT volume with --at, "
                            "--at-voxel or --candidates so the nodule is segmented")

    def prepare(self, slices: Sequence[Slice]) -> torch.Tensor:
        """Preprocessed (N, 3, H, W) float32 images in [0, 1] — exactly what the network sees."""
        self.check_masks(slices)
        slices = self._channels(slices)
        x = torch.from_numpy(self._fm.images(slices))
        extra = self._fm.extra(slices)
        self.model.bind_extra(None if extra is None else torch.from_numpy(extra))
        return x

    def predict_proba(self, slices: Sequence[Slice]) -> np.ndarray:
        """(N, C) class probabilities (with the run's TTA), in the order given."""
        self.check_masks(slices)
        return self._fm.predict_proba(self._channels(slices), self.device)

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

    def found(self, slices: Sequence[Slice]) -> list[Slice]:
        """What the model judges: a find-then-classify run's found nodule crops of full slices (`DataError`
        naming slices without one), else the slices as given."""
        return self._fm.found(slices)

    def _channels(self, slices: Sequence[Slice]) -> list[Slice]:
        """A 2.5D model given single slices (e.g. one DICOM file) sees the slice repeated: warned once.
        A find-then-classify run finds the nodule here, once per call."""
        slices = list(slices)
        if self._fm.cfg.channels == "context" and any(s.array.ndim == 2 for s in slices) and \
                self.config.get("used_context", False):
            warnings.warn("this model was trained on 3 neighbouring slices (2.5D); single slices are fed "
                          "as 3 copies, which it has not seen: expect weaker predictions", UserWarning,
                          stacklevel=3)
        return self._fm.found(slices)


def load_run(run_dir: str | Path) -> Predictor:
    """Open a finished run folder for prediction; errors name what is missing or incompatible."""
    paths = RunPaths(Path(run_dir))
    config = read_config(paths.root)
    fitted, _ = FittedModel.load(paths.model)
    return Predictor(paths.root, fitted, config, fitted.info)
