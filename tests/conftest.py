"""Shared fixtures: the real LIDC data in ../shared/data (skipped when absent) and the synthetic phantom."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support import private_cache

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CTNODULE_SHARED_DATA", REPO.parent / "shared" / "data"))


def _real(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"real data {path} not present")
    return path


@pytest.fixture(scope="session")
def voi_src() -> Path:
    """../shared/data/lidc-voi (LIDC VOI export: NIfTI crops + masks + xlsx)."""
    return _real("lidc-voi")


@pytest.fixture(scope="session")
def lidc_src() -> Path:
    """../shared/data/lidc-idri (four LIDC-IDRI patients, DICOM + XML)."""
    return _real("lidc-idri")


@pytest.fixture(scope="session")
def voi_frame(voi_src: Path):
    """One row per nodule of the real LIDC VOI sheet, with the manifest's id/label columns and diameter."""
    import pandas as pd

    sheet = pd.read_excel(voi_src / "MetadatabyNoduleMaxVoting.xlsx")
    return pd.DataFrame({
        "sample_id": sheet["patient_id"].astype(str) + "_R_" + sheet["nodule_id"].astype(str),
        "patient_id": sheet["patient_id"].astype(str),
        "malignancy": sheet["Malignancy_value"].astype(int),
        "label_binary": (sheet["Malignancy_value"] >= 4).astype(int),
        "diameter_mm": sheet["diameter_mm"].astype(float),
    })


@pytest.fixture(scope="session")
def phantom(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic phantom dataset (40 patients, ~58 nodules, all 5 classes, full + nodule views,
    masks and k=1 context), built once per test session. Synthetic: for pipeline tests, not for results."""
    from ctnodule.data.importers import import_synthetic

    out = tmp_path_factory.mktemp("phantom") / "phantom"
    import_synthetic(out, patients=40, seed=0, progress=False)
    return out


@pytest.fixture(scope="session")
def phantom_default_run(phantom, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default preset (frozen Lite0 + descriptors + logistic regression) trained on the phantom with 2
    folds; its frozen features go to a private cache, never the user's."""
    from ctnodule.recipe import load_preset
    from ctnodule.workflow import train_and_report

    out = tmp_path_factory.mktemp("runs") / "default"
    with private_cache(tmp_path_factory.mktemp("cache")):
        train_and_report(phantom, out, load_preset("default", folds=2), log=lambda m: None)
    return out


@pytest.fixture(scope="session")
def phantom_bundle(phantom_default_run, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`phantom_default_run` exported as a bundle (`ctnodule export`)."""
    from ctnodule.export.bundle import export_bundle

    return export_bundle(phantom_default_run, tmp_path_factory.mktemp("bundles") / "default")
