"""Heads: shapes, size features concatenated, the SVM and its differentiable surrogate."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ctnodule.errors import ConfigError
from ctnodule.models.heads import HEADS, LogRegHead, SVMHead, create_head, is_sklearn_head


@pytest.mark.parametrize("name", [n for n in HEADS.available() if not is_sklearn_head(n)])
def test_torch_heads_map_feature_maps_and_size_to_logits(name):
    head = create_head(name, in_features=32, n_classes=5, n_extra=1)
    fmap = torch.rand(4, 32, 2, 2)
    size = torch.rand(4, 1)
    out = head(fmap, size)
    assert out.shape == (4, 5)
    out.sum().backward()  # differentiable end to end
    with pytest.raises(ConfigError, match="tabular"):
        head(fmap, None)


def test_size_feature_changes_the_output():
    head = create_head("linear", in_features=8, n_classes=2, n_extra=1, dropout=0.0).eval()
    fmap = torch.zeros(2, 8, 1, 1)
    a = head(fmap, torch.tensor([[0.0], [0.0]]))
    b = head(fmap, torch.tensor([[3.0], [3.0]]))
    assert not torch.allclose(a, b)


@pytest.mark.parametrize("cls", [SVMHead, LogRegHead])
def test_sklearn_heads_separate_and_their_surrogate_agrees(cls):
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(-1, 0.5, (40, 6)), rng.normal(1, 0.5, (40, 6))]).astype(np.float32)
    y = np.repeat([0, 1], 40)
    svm = cls(seed=0, image_pca=2).fit(X, y, n_extra=1)
    p = svm.predict_proba(X, 2)
    assert p.shape == (80, 2) and np.allclose(p.sum(1), 1)
    assert (p.argmax(1) == y).mean() > 0.95
    head = svm.surrogate(X, 2, n_extra=1)
    fmap = torch.from_numpy(X[:, :5])[..., None, None]
    logits = head(fmap, torch.from_numpy(X[:, 5:]))
    assert (logits.argmax(1).numpy() == p.argmax(1)).mean() > 0.9


@pytest.mark.parametrize("cls", [SVMHead, LogRegHead])
def test_sklearn_heads_honour_sample_weights(cls):
    # overlapping classes, 4:1 imbalance: unweighted, the minority is rarely predicted; with the balanced
    # class weights (what `--imbalance weights` hands the head) its recall must rise
    rng = np.random.default_rng(1)
    X = np.vstack([rng.normal(0, 1, (200, 3)), rng.normal(0.8, 1, (50, 3))]).astype(np.float32)
    y = np.repeat([0, 1], [200, 50])
    w = np.where(y == 1, 250 / (2 * 50), 250 / (2 * 200))
    plain = cls(seed=0).fit(X, y).predict_proba(X, 2).argmax(1)
    weighted = cls(seed=0).fit(X, y, sample_weight=w).predict_proba(X, 2).argmax(1)
    assert (weighted[y == 1] == 1).mean() > (plain[y == 1] == 1).mean() + 0.2
