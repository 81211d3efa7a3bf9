"""`FittedModel`: a trained recipe with everything needed to apply it to new slices (fitted preprocessing
pipeline, network, tabular scaler, scikit-learn head), and its checkpoint form.

Training produces one per fold and one final model; prediction rebuilds the final one from `model.pt`.
Both sides meet here, below them, so neither has to import the other.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ctnodule.data.slice import Slice
from ctnodule.errors import RunError
from ctnodule.models.backbones import create_backbone
from ctnodule.models.batches import Batches, predict_logits
from ctnodule.models.descriptors import TabularScaler, tabular_features
from ctnodule.models.features import extract_features
from ctnodule.models.heads import SklearnHead, create_head, is_sklearn_head
from ctnodule.models.network import Classifier
from ctnodule.models.ordinal import ordinal_head_params
from ctnodule.preprocess import Pipeline, PreprocessConfig
from ctnodule.preprocess.inputs import to_images
from ctnodule.preprocess.segnet import LearnedSegmenter
from ctnodule.recipe import TrainConfig
from ctnodule.runfolder import read_checkpoint, save_checkpoint
from ctnodule.vocab import N_CLASSES


@dataclasses.dataclass
class FittedModel:
    """A trained model with everything needed to apply it to new slices."""

    cfg: TrainConfig
    pipeline: object  # ctnodule.preprocess.Pipeline
    net: Classifier  # backbone + head (a scikit-learn head's linear surrogate for svm/logreg)
    scaler: TabularScaler | None
    sk_head: SklearnHead | None = None  # a scikit-learn head (svm, logreg); `net` then holds its surrogate
    info: dict = dataclasses.field(default_factory=dict)  # facts recorded in the checkpoint (e.g. agreement)
    # find-then-classify (`find` recipes): `NoduleFinder` parameters (with a learned ranking, its fitted
    # `CandidateRanker` object, pickled in the checkpoint like `sk_head`); full slices are turned into the
    # found nodule's crop before anything else, so nothing downstream sees their own mask or position
    finder: dict | None = None
    # the learned seeded segmenter (`segmenter: learned`) that outlines nodules located in a CT; None: the
    # classical one (and every checkpoint written before it existed)
    segmenter: LearnedSegmenter | None = None

    def found(self, slices: Sequence[Slice]) -> list[Slice]:
        """The samples this model judges: with a finder, each full slice's found nodule crop (`DataError`
        naming the slices where none is found; with a learned segmenter each candidate also on its learned
        outline, `preprocess.segnet.with_learned_outlines`); samples found already, and any without a finder,
        as given."""
        slices = list(slices)
        if self.finder is None:
            return slices
        from ctnodule.preprocess.find import FOUND_KEY, NoduleFinder
        from ctnodule.preprocess.segnet import with_learned_outlines

        raw = [i for i, s in enumerate(slices) if FOUND_KEY not in s.meta]
        for i, s in zip(raw, NoduleFinder.from_params(self.finder)([slices[i] for i in raw])):
            slices[i] = s if self.segmenter is None else with_learned_outlines(s, self.segmenter)
        return slices

    def images(self, slices: Sequence[Slice]) -> np.ndarray:
        return to_images(list(self.pipeline.transform_many(self.found(slices), workers=1)),
                         with_mask=getattr(self.net.backbone, "takes_mask", False))

    def extra(self, slices: Sequence[Slice]) -> np.ndarray | None:
        if self.scaler is None:
            return None
        return self.scaler.transform(tabular_features(self.found(slices), self.cfg.tabular))

    def predict_proba(self, slices: Sequence[Slice], device: str = "cpu") -> np.ndarray:
        """(N, C) class probabilities; a soft find's (`find_top` > 1) are its candidates' weighted mean."""
        from ctnodule.preprocess.find import judged

        flat, _, decide = judged(self.found(slices))
        return decide(self.proba_from(self.images(flat), self.extra(flat), device))

    def head_inputs(self, slices: Sequence[Slice], device: str = "cpu", use_cache: bool = False) -> np.ndarray:
        """The rows a scikit-learn head reads: TTA-averaged pooled image features | standardised descriptors."""
        slices = self.found(slices)
        feats = extract_features(self.images(slices), self.net.backbone, pooled=True, tta=self.cfg.tta,
                                 device=device, use_cache=use_cache)
        return sklearn_matrix(feats, self.extra(slices))

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
                return self.sk_head.predict_proba(sklearn_matrix(feats, extra), N_CLASSES[cfg.task])
            data = Batches(as_maps(feats), y, ex, views=True)
            return predict_logits(self.net.head, data, cfg, device).softmax(1).numpy()
        data = Batches(torch.from_numpy(images), y, ex, views=False)
        proba = predict_logits(self.net, data, cfg, device).softmax(1).numpy()
        if self.sk_head is not None:  # the nodule CNN's late fusion: mean with the descriptor regression
            proba = (proba + self.sk_head.predict_proba(extra, N_CLASSES[cfg.task])) / 2
        return proba

    @property
    def has_sklearn_head(self) -> bool:
        """True when the recipe's own head is a scikit-learn one deciding on (image features + tabular): the
        model that `attribute` explains. (The nodule CNN's descriptor regression is a fusion partner, not it.)"""
        return self.sk_head is not None and is_sklearn_head(self.cfg.head)

    def save(self, path: Path, extra: dict[str, Any] | None = None) -> None:
        """Write the model as a checkpoint. A frozen pretrained backbone is rebuilt from its weights source
        on load (checked by name + weights status), so only the head is stored."""
        net = self.net
        frozen_pretrained = self.cfg.freeze_backbone and net.backbone.pretrained
        state = net.head.state_dict() if frozen_pretrained else net.state_dict()
        save_checkpoint(path, {
            "config": self.cfg.model_dump(mode="json"), "weights_status": net.backbone.weights_status,
            "state": state, "head_only": frozen_pretrained, "pipeline": self.pipeline.to_config().model_dump(mode="json"),
            "scaler": None if self.scaler is None else self.scaler.state(), "sk_head": self.sk_head,
            "n_extra": net.n_extra, "finder": self.finder,
            "segmenter": None if self.segmenter is None else self.segmenter.state(), **(extra or {}),
        })

    @classmethod
    def load(cls, path: Path) -> tuple[FittedModel, dict[str, Any]]:
        """Rebuild a model written by `save`; returns it with the whole checkpoint dictionary."""
        blob = read_checkpoint(path)
        cfg = TrainConfig.model_validate(blob["config"])
        with warnings.catch_warnings():  # the no-weights warning was given at training time and is recorded
            warnings.simplefilter("ignore", UserWarning)
            backbone = create_backbone(cfg.backbone, cfg.weights if blob["head_only"] else "none")
        if blob["head_only"] and backbone.weights_status != blob["weights_status"]:
            raise RunError(f"{path}: the model was trained on backbone weights '{blob['weights_status']}' but "
                           f"'{backbone.weights_status}' are available now; install them or retrain")
        sk = is_sklearn_head(cfg.head)
        params = {"dropout": 0.0} if sk else cfg.head_params
        if cfg.head == "ordinal":
            params = ordinal_head_params(cfg.head_params)
        head = create_head("linear" if sk else cfg.head, backbone.num_features, N_CLASSES[cfg.task],
                           blob["n_extra"], **params)
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
        segmenter = blob.get("segmenter")
        segmenter = None if segmenter is None else LearnedSegmenter.from_state(segmenter)
        return cls(cfg, pipeline, net, scaler, blob["sk_head"], info, blob.get("finder"), segmenter), blob


def as_maps(feats: np.ndarray) -> torch.Tensor:
    """Cached features as (V, N, F, h, w) tensors; pooled (V, N, F) become 1x1 maps."""
    t = torch.from_numpy(feats)
    return t[..., None, None] if t.ndim == 3 else t


def sklearn_matrix(feats: np.ndarray, extra: np.ndarray | None) -> np.ndarray:
    """Pooled features averaged over TTA views (+ tabular): the scikit-learn head's input rows."""
    x = feats.astype(np.float32).mean(0)
    x = x.reshape(len(x), -1) if x.ndim == 2 else x.mean(axis=(2, 3))
    return x if extra is None else np.hstack([x, extra])
