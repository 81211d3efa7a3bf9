"""Classification heads by name: the seed's head, a plain MLP, a linear head, and SVM / logistic regression
on cached features.

Every head takes the backbone's feature map (N, F, h, w) plus optional tabular features (N, E) — the
measured nodule size, the strongest malignancy signal — concatenated to the pooled image features, and
returns logits (N, C). The SVM and logistic regression are scikit-learn estimators (params in `__init__`,
fitted state ends in `_`), trained on cached pooled features; `surrogate()` distils one into a linear
torch head so Grad-CAM still has a differentiable path from pixels to a class score.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ctnodule.errors import ConfigError
from ctnodule.models.ordinal import cumulative_to_proba
from ctnodule.registry import Registry

HEADS: Registry = Registry("head")


class Head(nn.Module):
    """Base: `forward(fmap, extra)`; `n_extra` tabular features are appended after pooling."""

    n_extra: int = 0

    def _with_extra(self, pooled: torch.Tensor, extra: torch.Tensor | None) -> torch.Tensor:
        if self.n_extra == 0:
            return pooled
        if extra is None or extra.shape != (pooled.shape[0], self.n_extra):
            got = None if extra is None else tuple(extra.shape)
            raise ConfigError(f"this head needs {self.n_extra} tabular feature(s) per sample (the nodule "
                              f"size), got {got}")
        return torch.cat([pooled, extra.to(pooled.dtype)], dim=1)


class SeedHead(Head):
    """The seed's head: conv 3x3, max-pool, flatten, dropout, three dense layers, dropout, output."""

    def __init__(self, in_features: int, n_classes: int, n_extra: int = 0, conv: int = 128,
                 dense: tuple[int, int, int] = (256, 128, 64), dropout: float = 0.5):
        super().__init__()
        self.n_extra = n_extra
        self.conv = nn.Sequential(nn.Conv2d(in_features, conv, 3, padding=1), nn.ReLU(inplace=True),
                                  nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Dropout(dropout))
        layers: list[nn.Module] = []
        width = conv + n_extra
        for d in dense:
            layers += [nn.Linear(width, d), nn.ReLU(inplace=True)]
            width = d
        self.dense = nn.Sequential(*layers, nn.Dropout(dropout), nn.Linear(width, n_classes))

    def forward(self, fmap: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        return self.dense(self._with_extra(self.conv(fmap), extra))


class MLPHead(Head):
    """Global average pool, (+ size), one hidden layer with dropout, output."""

    def __init__(self, in_features: int, n_classes: int, n_extra: int = 0, hidden: int = 256,
                 dropout: float = 0.3):
        super().__init__()
        self.n_extra = n_extra
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.mlp = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_features + n_extra, hidden),
                                 nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(hidden, n_classes))

    def forward(self, fmap: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        return self.mlp(self._with_extra(self.pool(fmap), extra))


class LinearHead(Head):
    """Global average pool, (+ size), dropout, one linear layer: the least that can overfit."""

    def __init__(self, in_features: int, n_classes: int, n_extra: int = 0, dropout: float = 0.2):
        super().__init__()
        self.n_extra = n_extra
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(in_features + n_extra, n_classes)

    def forward(self, fmap: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        return self.fc(self.drop(self._with_extra(self.pool(fmap), extra)))


class OrdinalHead(Head):
    """Average pool over the cells the backbone kept (all of them, or the nodule region of a `*_roi` net),
    dropout, then `scores - 1` cumulative logits for P(score > k) (see `models/ordinal.py`).

    `forward` returns class log-probabilities, so losses, argmax, TTA and Grad-CAM targets work unchanged:
    for 5 classes the scores' probabilities, for 2 classes P(score <= 3) / P(score >= 4) of the same model.
    `cumulative` gives the raw cumulative logits the label-mode losses train.
    """

    def __init__(self, in_features: int, n_classes: int, n_extra: int = 0, dropout: float = 0.3, scores: int = 5,
                 benign_max: int = 3):
        super().__init__()
        if n_classes not in (2, scores):
            raise ConfigError(f"ordinal head: {n_classes} classes; expected 2 (binary) or {scores} (scores)")
        self.n_extra = n_extra
        self.n_classes = n_classes
        self.benign_max = benign_max
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(in_features + n_extra, scores - 1)

    def cumulative(self, fmap: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        kept = (fmap.abs().sum(dim=1, keepdim=True) > 0).to(fmap.dtype)
        pooled = fmap.sum(dim=(2, 3)) / kept.sum(dim=(2, 3)).clamp_min(1.0)
        return self.fc(self.drop(self._with_extra(pooled, extra)))

    def forward(self, fmap: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        proba = cumulative_to_proba(self.cumulative(fmap, extra))
        if self.n_classes == 2:
            proba = torch.stack([proba[:, :self.benign_max].sum(1), proba[:, self.benign_max:].sum(1)], dim=1)
        return proba.clamp_min(1e-8).log()


class SklearnHead:
    """Base of the scikit-learn heads: standardised pooled features (+ tabular) -> calibrated probabilities.

    Not torch modules: they are fitted on cached features, so they need a frozen backbone.
    """

    is_sklearn = True

    #: reduce the image features to this many principal components before the classifier (None: keep all);
    #: with ~800 samples, 1280 image dimensions drown the 20 tabular ones
    image_pca: int | None = None

    def _estimator(self):  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    def fit(self, X: np.ndarray, y: np.ndarray, n_extra: int = 0,
            sample_weight: np.ndarray | None = None) -> SklearnHead:
        """Fit on rows [image features | `n_extra` tabular features]; `sample_weight` (e.g. the class
        weights of `--imbalance weights`, one per row) reaches the classifier itself."""
        model = self.pipeline(X.shape[1] - n_extra, len(X))
        fit_params = {} if sample_weight is None else {f"{model.steps[-1][0]}__sample_weight": sample_weight}
        self.model_ = model.fit(X, y, **fit_params)
        self.classes_ = self.model_.classes_
        return self

    def fit_distribution(self, X: np.ndarray, targets: np.ndarray, n_extra: int = 0) -> SklearnHead:
        """Fit on (N, K) target distributions (soft labels): cross-entropy on soft targets, done as each row
        entering once per class with weight `targets[:, k]`. The PCA / standardisation steps are fitted on
        the N rows once, so a row the readers split is not counted twice there."""
        model = self.pipeline(X.shape[1] - n_extra, len(X))
        rows, classes = np.nonzero(targets > 0)
        Xt = model[:-1].fit_transform(X)  # fits the pipeline's own step objects in place
        model.steps[-1][1].fit(Xt[rows], classes, sample_weight=targets[rows, classes])
        self.model_ = model
        self.classes_ = self.model_.classes_
        return self

    def pipeline(self, n_image: int, n_rows: int):
        """The unfitted scikit-learn pipeline: [image PCA | tabular] -> standardise -> classifier (the
        classifier step is last, named after its class, e.g. `logisticregression`)."""
        from sklearn.compose import ColumnTransformer
        from sklearn.decomposition import PCA
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        steps = []
        if self.image_pca is not None and 0 < self.image_pca < min(n_image, n_rows):
            image = make_pipeline(StandardScaler(), PCA(self.image_pca, random_state=0))
            steps.append(ColumnTransformer([("image", image, slice(0, n_image)),
                                            ("tabular", "passthrough", slice(n_image, None))]))
        return make_pipeline(*steps, StandardScaler(), self._estimator())

    def predict_proba(self, X: np.ndarray, n_classes: int) -> np.ndarray:
        if not hasattr(self, "model_"):
            raise ConfigError(f"{type(self).__name__}: call fit(features, labels) before predict_proba")
        out = np.zeros((len(X), n_classes), dtype=np.float64)
        out[:, self.classes_] = self.model_.predict_proba(X)
        return out

    def surrogate(self, X: np.ndarray, n_classes: int, n_extra: int) -> LinearHead:
        """A linear torch head fitted to reproduce this head's log-probabilities on `X` (least squares).

        Grad-CAM differentiates this surrogate; its agreement with the head is recorded in the run.
        """
        target = np.log(np.clip(self.predict_proba(X, n_classes), 1e-6, 1.0))
        target -= target.mean(axis=1, keepdims=True)
        design = np.hstack([X, np.ones((len(X), 1))])
        coef, *_ = np.linalg.lstsq(design, target, rcond=1e-4)
        head = LinearHead(X.shape[1] - n_extra, n_classes, n_extra=n_extra, dropout=0.0)
        with torch.no_grad():
            head.fc.weight.copy_(torch.from_numpy(coef[:-1].T.astype(np.float32)))
            head.fc.bias.copy_(torch.from_numpy(coef[-1].astype(np.float32)))
        return head


class SVMHead(SklearnHead):
    """The seed's SVM option: an RBF SVM with sigmoid-calibrated (Platt) probabilities."""

    def __init__(self, C: float = 1.0, kernel: str = "rbf", gamma: str | float = "scale", seed: int = 0,
                 image_pca: int | None = None):
        self.C = C
        self.kernel = kernel
        self.gamma = gamma
        self.seed = seed
        self.image_pca = image_pca

    def _estimator(self):
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.svm import SVC

        # Platt scaling on cross-validated decision values (scikit-learn's replacement for probability=True)
        return CalibratedClassifierCV(SVC(C=self.C, kernel=self.kernel, gamma=self.gamma, random_state=self.seed),
                                      method="sigmoid", cv=3, ensemble=False)


class LogRegHead(SklearnHead):
    """L2 (multinomial) logistic regression: the best head on the LIDC VOIs in patient-grouped CV (beat
    gradient boosting and the SVM with ~800 samples). Linear in its input, so the Grad-CAM surrogate is exact."""

    def __init__(self, C: float = 1.0, seed: int = 0, image_pca: int | None = None):
        self.C = C
        self.seed = seed
        self.image_pca = image_pca

    def _estimator(self):
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=self.C, max_iter=5000, random_state=self.seed)


def is_sklearn_head(name: str) -> bool:
    """True for heads fitted by scikit-learn on cached features (they need a frozen backbone)."""
    return getattr(HEADS.get(name), "is_sklearn", False)


def create_head(name: str, in_features: int, n_classes: int, n_extra: int = 0, **params) -> Head | SklearnHead:
    """Build head `name`; torch heads get the feature sizes, the SVM only its own params."""
    factory = HEADS.get(name)
    if is_sklearn_head(name):
        return factory(**params)
    try:
        return factory(in_features=in_features, n_classes=n_classes, n_extra=n_extra, **params)
    except TypeError as exc:
        raise ConfigError(f"head {name!r}: bad parameter ({exc})") from None


HEADS.register("seed")(SeedHead)
HEADS.register("mlp")(MLPHead)
HEADS.register("linear")(LinearHead)
HEADS.register("ordinal")(OrdinalHead)
HEADS.register("svm")(SVMHead)
HEADS.register("logreg")(LogRegHead)
