"""`open_dataset`: a dataset appears only complete; failures leave nothing; --force replaces only at the end."""

from __future__ import annotations

import numpy as np
import pytest

from ctnodule.data import SliceDataset
from ctnodule.data.writer import open_dataset
from ctnodule.errors import CTNoduleError


def _add(w, sid, m=3, **extra):
    w.add(np.zeros((6, 5), np.int16), (0.7, 0.7), sample_id=sid, patient_id="P1", nodule_id=1, view="nodule",
          malignancy=m, source="test", **extra)


def test_written_dataset_is_valid_with_masks_and_context(tmp_path):
    with open_dataset(tmp_path / "d") as w:
        w.add(np.ones((6, 5), np.int16), (0.5, 0.6), sample_id="a", patient_id="P1", nodule_id=1, view="full",
              malignancy=4, source="test", mask=np.eye(6, 5, dtype=bool), context=np.zeros((3, 6, 5), np.int16))
        _add(w, "b", m=2)
    ds = SliceDataset(tmp_path / "d")
    assert list(ds.frame["label_binary"]) == [1, 0]
    assert ds[0].mask.dtype == np.uint8 and ds[0].mask.sum() == 5 and ds.context(0).shape == (3, 6, 5)
    assert ds.context(1) is None and ds[1].mask is None and ds[0].spacing == pytest.approx((0.5, 0.6))


def test_failure_leaves_no_half_dataset_and_keeps_the_old_one(tmp_path):
    out = tmp_path / "d"
    with open_dataset(out) as w:
        _add(w, "old")
    with pytest.raises(RuntimeError), open_dataset(out, force=True) as w:
        _add(w, "new")
        raise RuntimeError("import crashed")
    assert list(SliceDataset(out).frame["sample_id"]) == ["old"]
    assert [p.name for p in tmp_path.iterdir()] == ["d"]  # no temporary folder left behind
    with pytest.raises(CTNoduleError), open_dataset(out, force=True) as w:  # invalid rows fail at close
        _add(w, "x", m=9)
    assert list(SliceDataset(out).frame["sample_id"]) == ["old"]


def test_dataset_views_subsets_labels_groups(phantom):
    ds = SliceDataset(phantom, validate=False)
    full = ds.view("full")
    assert len(full) + len(ds.view("nodule")) == len(ds) and set(full.frame["view"]) == {"full"}
    sub = ds.subset([0, 2])
    assert len(sub) == 2 and sub[1].meta["sample_id"] == ds.frame["sample_id"][2]
    assert set(ds.labels("multiclass")) == {0, 1, 2, 3, 4} and set(ds.labels("binary")) == {0, 1}
    assert (ds.labels("binary") == (ds.labels("multiclass") >= 3)).all()
    assert len(ds.groups) == len(ds) and ds.groups[0].startswith("PHANTOM-")
