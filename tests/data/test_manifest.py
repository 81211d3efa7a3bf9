"""Manifest validation: every error the issue lists names the row and the file."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ctnodule.data import SliceDataset
from ctnodule.data.io import write_nrrd
from ctnodule.data.manifest import MANIFEST, read_manifest, write_manifest
from ctnodule.errors import DataError
from ctnodule.vocab import binary_label


def _dataset(root, n=3, **overrides):
    """A valid tiny dataset, then `overrides` {column: (row, value)} written into its manifest."""
    rows = []
    for i in range(n):
        rel = f"slices/s{i}.nrrd"
        write_nrrd(root / rel, np.full((8, 9), -800 + i, np.int16), (0.7, 0.7))
        m = i % 5 + 1
        rows.append({"sample_id": f"s{i}", "patient_id": f"P{i}", "nodule_id": "1", "view": "nodule",
                     "path": rel, "malignancy": m, "label_binary": binary_label(m), "source": "test"})
    frame = pd.DataFrame(rows)
    for col, (i, value) in overrides.items():
        frame[col] = frame[col].astype(object)
        frame.loc[i, col] = value
    frame.to_csv(root / MANIFEST, index=False)
    return root


def test_valid_dataset_loads(tmp_path):
    ds = SliceDataset(_dataset(tmp_path))
    assert len(ds) == 3 and ds[2].array[0, 0] == -798 and ds[0].spacing == pytest.approx((0.7, 0.7))
    assert list(ds.labels("multiclass")) == [0, 1, 2] and list(ds.labels("binary")) == [0, 0, 0]


@pytest.mark.parametrize("column, value, message", [
    ("view", "axial", "unknown view 'axial'"),
    ("malignancy", 6, "outside 1..5"),
    ("malignancy", 0, "outside 1..5"),
    ("malignancy", "high", "outside 1..5"),
    ("sample_id", "s0", "duplicate sample_id 's0'"),
    ("label_binary", 1, "disagrees with malignancy"),
    ("patient_id", "", "empty patient_id"),
])
def test_bad_rows_name_row_and_file(tmp_path, column, value, message):
    root = _dataset(tmp_path, **{column: (1, value)})
    with pytest.raises(DataError, match=message) as err:
        SliceDataset(root)
    assert "row 3" in str(err.value) and MANIFEST in str(err.value)


def test_missing_required_column_and_missing_manifest(tmp_path):
    root = _dataset(tmp_path)
    pd.read_csv(root / MANIFEST).drop(columns="source").to_csv(root / MANIFEST, index=False)
    with pytest.raises(DataError, match="missing required column"):
        SliceDataset(root)
    with pytest.raises(DataError, match="no manifest.csv"):
        read_manifest(tmp_path / "slices")
    with pytest.raises(DataError, match="not found"):
        read_manifest(tmp_path / "nowhere")


def test_missing_file(tmp_path):
    root = _dataset(tmp_path)
    (root / "slices" / "s2.nrrd").unlink()
    with pytest.raises(DataError, match=r"row 4.*does not exist|does not exist.*") as err:
        SliceDataset(root)
    assert "s2.nrrd" in str(err.value) and "row 4" in str(err.value)
    assert len(SliceDataset(root, validate=False)) == 3  # schema-only loading still works


def test_non_2d_array(tmp_path):
    root = _dataset(tmp_path)
    write_nrrd(root / "slices" / "s1.nrrd", np.zeros((2, 8, 9), np.int16), (1.0, 0.7, 0.7))
    with pytest.raises(DataError, match=r"shape \(2, 8, 9\); expected 2D") as err:
        SliceDataset(root)
    assert "s1.nrrd" in str(err.value) and "row 3" in str(err.value)


def test_nan_values(tmp_path):
    root = _dataset(tmp_path)
    bad = np.zeros((8, 9), np.float32)
    bad[3, 4] = np.nan
    write_nrrd(root / "slices" / "s0.nrrd", bad, (0.7, 0.7))
    with pytest.raises(DataError, match="NaN") as err:
        SliceDataset(root)
    assert "s0.nrrd" in str(err.value) and "row 2" in str(err.value)


def test_bad_optional_arrays_are_checked_too(tmp_path):
    root = _dataset(tmp_path)
    frame = pd.read_csv(root / MANIFEST)
    write_nrrd(root / "context" / "s0.nrrd", np.zeros((8, 9), np.int16), (0.7, 0.7))  # should be 3D
    frame["context_path"] = ["context/s0.nrrd", "", ""]
    frame.to_csv(root / MANIFEST, index=False)
    with pytest.raises(DataError, match="context_path array has shape"):
        SliceDataset(root)


def test_write_manifest_refuses_invalid_frames(tmp_path):
    frame = pd.read_csv(_dataset(tmp_path) / MANIFEST)
    frame.loc[0, "view"] = "sagittal"
    with pytest.raises(DataError, match="unknown view"):
        write_manifest(tmp_path / "other", frame)
    assert not (tmp_path / "other" / MANIFEST).exists()
    with pytest.raises(DataError, match="no rows"):
        write_manifest(tmp_path / "other", frame.iloc[:0])


def test_synthetic_info_counts_generated_rows_by_flag_or_source():
    import pandas as pd

    from ctnodule.data.manifest import synthetic_info

    frame = pd.DataFrame({"source": ["lidc-voi", "cgan", "synthetic", "folder"], "synthetic": [0, 1, 1, 1]})
    assert synthetic_info(frame) == {"n_synthetic": 3, "n_samples": 4, "sources": ["CT phantom", "conditional GAN",
                                                                                   "folder"], "n_composite": 0}
    assert synthetic_info(frame.iloc[[0]]) is None
    assert synthetic_info(frame.drop(columns="synthetic"))["n_synthetic"] == 2  # older manifests: by source
    diffusion = pd.DataFrame({"source": ["lidc-voi", "diffusion"]})
    assert synthetic_info(diffusion)["sources"] == ["diffusion model"]
    # composites of real scans count apart (their own banner); a composite of phantom data stays synthetic
    mixed = pd.DataFrame({"source": ["lidc-voi", "composite", "composite"], "synthetic": [0, 0, 1]})
    assert synthetic_info(mixed) == {"n_synthetic": 2, "n_samples": 3, "sources": ["composite"], "n_composite": 1}
