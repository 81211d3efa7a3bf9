"""Fixtures for the evaluation tests: honestly generated predictions (a noisy ordinal scorer), so metrics are exercised on realistic, imperfect input."""

from __future__ import annotations

import numpy as np


def noisy_scores(n: int, n_classes: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels and softmax probabilities of a scorer that sees the ordinal label through Gaussian noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    latent = y + rng.normal(0.0, noise, n)
    logits = -((latent[:, None] - np.arange(n_classes)[None, :]) ** 2)
    proba = np.exp(logits - logits.max(axis=1, keepdims=True))
    return y, proba / proba.sum(axis=1, keepdims=True)
