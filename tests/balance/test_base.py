"""Contract tests run over every registered balancer."""

import numpy as np
import pytest
import torch

from ctnodule.balance import available, resolve
from ctnodule.errors import ConfigError

EXPECTED = {"none", "weights", "oversample", "undersample", "smote", "smote_embed", "cgan", "diffusion", "focal",
            "logit_adjusted"}
FAST = sorted(set(available()) - {"cgan", "diffusion"})  # they train a network: test_cgan/test_diffusion.py


def test_all_balancers_registered():
    assert EXPECTED <= set(available())


def test_unknown_name_suggests_close_match():
    with pytest.raises(ConfigError, match="smote"):
        resolve("smot")


@pytest.mark.parametrize("name", FAST)
def test_contract_on_features(name):
    rng = np.random.default_rng(0)
    y = np.array([0] * 30 + [1] * 12 + [2] * 8)
    X = rng.normal(size=(len(y), 6)).astype(np.float32) + y[:, None]
    b = resolve(name)
    params = b.get_params()
    X2, y2, synth = b.resample(X, y, seed=3)
    assert X2.shape[1:] == X.shape[1:] and X2.dtype == X.dtype
    assert len(X2) == len(y2) == len(synth) and synth.dtype == bool
    # real rows are the input rows, unchanged; synthetic rows point nowhere
    idx = b.sample_indices_
    np.testing.assert_array_equal(X2[~synth], X[idx[~synth]])
    np.testing.assert_array_equal(y2[~synth], y[idx[~synth]])
    assert (idx[synth] == -1).all()
    counts = np.bincount(y2, minlength=3)
    if name in ("oversample", "smote", "smote_embed"):
        assert (counts == 30).all()
    elif name == "undersample":
        assert (counts == 8).all()
    else:
        np.testing.assert_array_equal(X2, X)
    assert isinstance(b.loss(y2, 3), torch.nn.Module)
    assert b.get_params() == params  # fitting never rewrites the user's parameters
    # deterministic from the seed
    X3, y3, _ = resolve(name).resample(X, y, seed=3)
    np.testing.assert_array_equal(X2, X3)
    np.testing.assert_array_equal(y2, y3)


def test_mismatched_lengths_are_a_clear_error():
    with pytest.raises(ConfigError, match="rows"):
        resolve("oversample").resample(np.zeros((5, 2)), np.zeros(4, dtype=int), 0)


def test_cgan_balancer_tops_up_minorities_with_synthetic_images():
    rng = np.random.default_rng(0)
    y = np.array([0] * 20 + [1] * 8 + [2] * 4)
    X = np.repeat(rng.random((len(y), 1, 16, 16), dtype=np.float32), 3, axis=1)  # grey slice as 3 channels
    b = resolve("cgan", epochs=1, width=8, batch_size=16)
    X2, y2, synth = b.resample(X, y, seed=0)
    assert X2.shape == (60, 3, 16, 16) and np.bincount(y2).tolist() == [20, 20, 20]
    assert synth.sum() == 28 and (y2[synth] != 0).all()
    np.testing.assert_array_equal(X2[~synth], X)
    np.testing.assert_array_equal(X2[synth][:, 0], X2[synth][:, 2])  # channels stay copies of one slice
    masks = (X[:, 0] > 0.5).astype(np.uint8)
    stack = np.concatenate([X[:, :1], X[:, :1] ** 2, X[:, :1]], axis=1)  # a 2.5D stack: channels differ
    X3, y3, synth3 = b.resample(stack, y, seed=0, masks=masks)
    assert np.bincount(y3).tolist() == [20, 20, 20]
    assert X3.shape == (60, 3, 16, 16) and synth3.sum() == 28 and b.masks_.shape == (60, 16, 16)
    np.testing.assert_array_equal(b.masks_[~synth3], masks > 0)  # real rows keep theirs, generated get new ones
    with pytest.raises(ConfigError, match="smote_embed"):
        b.resample(rng.random((32, 10)), y, 0)
