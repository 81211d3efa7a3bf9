"""Fixtures for the evaluation tests: the real VOI metadata sheet as a manifest-like frame, and honestly
generated predictions (a noisy ordinal scorer), so metrics are exercised on realistic, imperfect input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest


def voi_sheet_frame(voi_src: Path) -> pd.DataFrame:
    """One row per nodule of the real LIDC VOI sheet, with the manifest's id/label columns."""
    sheet = pd.read_excel(voi_src / "MetadatabyNoduleMaxVoting.xlsx")
    return pd.DataFrame({
        "sample_id": sheet["patient_id"].astype(str) + "_R_" + sheet["nodule_id"].astype(str),
        "patient_id": sheet["patient_id"].astype(str),
        "malignancy": sheet["Malignancy_value"].astype(int),
        "label_binary": (sheet["Malignancy_value"] >= 4).astype(int),
        "diameter_mm": sheet["diameter_mm"].astype(float),
    })


@pytest.fixture(scope="session")
def voi_frame(voi_src: Path) -> pd.DataFrame:
    return voi_sheet_frame(voi_src)


def noisy_scores(n: int, n_classes: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels and softmax probabilities of a scorer that sees the ordinal label through Gaussian noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    latent = y + rng.normal(0.0, noise, n)
    logits = -((latent[:, None] - np.arange(n_classes)[None, :]) ** 2)
    proba = np.exp(logits - logits.max(axis=1, keepdims=True))
    return y, proba / proba.sum(axis=1, keepdims=True)
