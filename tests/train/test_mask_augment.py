"""Mask augmentation (`mask_augment`): the automatic-mask copy of a sample, and the training rows it adds."""

from __future__ import annotations

import numpy as np
import pytest

from ctnodule.data.dataset import SliceDataset
from ctnodule.data.measure import mask_geometry
from ctnodule.data.slice import Slice
from ctnodule.errors import ConfigError
from ctnodule.preprocess.inputs import load_slices
from ctnodule.recipe import TrainConfig, load_preset
from ctnodule.train.fold import train_fold
from ctnodule.train.mask_augment import automatic_mask_copy
from ctnodule.vocab import task_labels


def _ball_stack(centre_z: float, radius_mm: float = 6.0, spacing=(0.7, 0.7), thickness: float = 2.0,
                shape=(3, 64, 64)) -> np.ndarray:
    """A (3, H, W) HU stack of lung (-850) holding a solid ball (+40) centred at slice `centre_z`."""
    k, j, i = np.indices(shape, dtype=float)
    d = np.sqrt(((k - centre_z) * thickness) ** 2 + ((j - 32) * spacing[0]) ** 2 + ((i - 32) * spacing[1]) ** 2)
    return np.where(d <= radius_mm, 40.0, -850.0).astype(np.float32)


def _sample(stack: np.ndarray, mask: np.ndarray, thickness: float = 2.0) -> Slice:
    meta = {"sample_id": "s", "slice_thickness": thickness, **(mask_geometry(mask, (0.7, 0.7)) if mask.any() else {})}
    return Slice(stack.astype(np.int16), (0.7, 0.7), meta, mask=mask.astype(np.uint8))


def test_the_copy_is_the_segmentation_from_the_given_masks_centroid():
    stack = _ball_stack(1.0)
    drawn = np.zeros((64, 64), bool)
    drawn[24:41, 24:41] = True  # a square drawn over the ball: same place, another outline
    copy = automatic_mask_copy(_sample(stack, drawn))
    ball = stack[1] > -400
    assert copy is not None and copy.array.shape == stack.shape
    got = copy.mask > 0
    assert 2 * (got & ball).sum() / (got.sum() + ball.sum()) > 0.9  # the ball's outline, not the square
    assert got.sum() != drawn.sum()
    assert copy.meta["mask_diameter_mm"] == pytest.approx(mask_geometry(got, (0.7, 0.7))["mask_diameter_mm"])
    np.testing.assert_array_equal(copy.array, stack)  # the largest automatic slice is the centre one


def test_the_copy_moves_to_the_stack_slice_where_the_automatic_mask_is_largest():
    stack = _ball_stack(0.0, radius_mm=4.0)  # the ball is centred on slice 0, cut small on slice 1
    drawn = stack[1] > -400
    copy = automatic_mask_copy(_sample(stack, drawn))
    assert copy is not None
    np.testing.assert_array_equal(copy.array, stack[[0, 0, 1]])  # slice 0 in the middle, its edge replicated
    assert (copy.mask > 0).sum() > drawn.sum()


def test_no_copy_without_a_mask_or_where_the_segmentation_refuses():
    stack = np.full((3, 64, 64), -850, np.float32)  # lung only: the seed is in air
    drawn = np.zeros((64, 64), bool)
    drawn[30:34, 30:34] = True
    assert automatic_mask_copy(_sample(stack, drawn)) is None
    assert automatic_mask_copy(_sample(_ball_stack(1.0), np.zeros((64, 64), bool))) is None


def test_the_default_preset_augments_and_other_heads_give_it_up():
    assert load_preset("default").mask_augment
    assert not load_preset("default", head="mlp", freeze_backbone=False).mask_augment
    assert not load_preset("default", imbalance="smote").mask_augment
    with pytest.raises(ConfigError, match="mask_augment"):
        load_preset("default", head="mlp", freeze_backbone=False, mask_augment=True)
    with pytest.raises(ValueError, match="mask_augment"):
        TrainConfig(head="logreg", freeze_backbone=True, calibration="platt", mask_augment=True)


def _fold_proba(cfg, slices, frame, y, tmp_path, name, copies=None):
    train_idx, held = np.arange(0, len(frame), 2), np.arange(1, len(frame), 2)
    _, _, proba = train_fold(cfg, slices, frame, y, train_idx, 0, tmp_path / name, log=lambda m: None,
                             predict_idx=held, mask_copies=copies)
    return proba


def test_copies_enter_as_extra_rows_with_their_sources_labels(phantom, tmp_path):
    """An exact copy of every training row doubles each row's weight in the logistic loss, which is the
    un-augmented fit with twice the C (the PCA and scalers see the same mean and spread): so the copies
    carry their own rows' labels. No copy at all is the un-augmented fit; the automatic copies change it."""
    ds = SliceDataset(phantom).view("nodule")
    slices, frame = load_slices(ds, "context"), ds.frame
    y = task_labels(frame, "binary")
    base = load_preset("default", folds=2, labels="maxvote")
    plain = base.model_copy(update={"mask_augment": False})
    doubled_c = plain.model_copy(update={"head_params": {**plain.head_params, "C": 2 * plain.head_params["C"]}})
    same = _fold_proba(base, slices, frame, y, tmp_path, "same", copies=slices)
    np.testing.assert_allclose(same, _fold_proba(doubled_c, slices, frame, y, tmp_path, "c2"), atol=1e-4)
    none = _fold_proba(base, slices, frame, y, tmp_path, "none", copies=[None] * len(slices))
    unaugmented = _fold_proba(plain, slices, frame, y, tmp_path, "plain")
    np.testing.assert_allclose(none, unaugmented, atol=1e-9)
    automatic = _fold_proba(base, slices, frame, y, tmp_path, "auto")
    assert not np.allclose(automatic, unaugmented, atol=1e-3)


@pytest.mark.parametrize("flag, expected", [([], True), (["--no-mask-augment"], False)])
def test_train_turns_it_off_on_the_command_line(monkeypatch, phantom, tmp_path, flag, expected):
    from ctnodule import workflow
    from ctnodule.cli import main

    seen = {}

    def record(data, out, cfg, **kwargs):
        seen["cfg"] = cfg
        return out

    monkeypatch.setattr(workflow, "train_and_report", record)
    main(["train", str(phantom), "--out", str(tmp_path / "run"), *flag])
    assert seen["cfg"].mask_augment is expected
