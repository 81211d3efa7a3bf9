"""Fixtures for the preprocess tests: a seeded generator and a small slice dataset on disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ctnodule.data.writer import open_dataset

from .synth import chest_slice, nodule_crop


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def small_dataset(tmp_path: Path) -> Path:
    """A slice dataset with 30 nodule crops (two patient groups, varied spacing/size/noise) and 3 full
    slices, written through the real `open_dataset` writer."""
    rng = np.random.default_rng(7)
    out = tmp_path / "ds"
    with open_dataset(out) as w:
        for i in range(30):
            sp = float(rng.uniform(0.55, 0.9))
            s = nodule_crop(rng, size=int(rng.choice([44, 44, 48, 52])), spacing=sp,
                            radius_mm=float(rng.uniform(2, 9)), noise=float(rng.uniform(20, 120)))
            ctx = np.stack([s.array, s.array, s.array])
            w.add(s.array, s.spacing, sample_id=f"n{i:02d}", patient_id=f"P{i % 6}", nodule_id=i, view="nodule",
                  malignancy=1 + i % 5, source="test", mask=s.mask, context=ctx,
                  centre_r=s.array.shape[0] / 2, centre_c=s.array.shape[1] / 2)
        for i in range(3):
            s, centre, _ = chest_slice(rng, size=256, spacing=1.4)
            w.add(s.array, s.spacing, sample_id=f"f{i}", patient_id=f"P{i}", nodule_id=100 + i, view="full",
                  malignancy=2 + i, source="test", centre_r=centre[0], centre_c=centre[1])
    return out
