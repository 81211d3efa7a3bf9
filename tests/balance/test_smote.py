import numpy as np
import pytest

from ctnodule.balance import resolve
from ctnodule.errors import ConfigError


def test_smote_on_images_interpolates_within_class():
    rng = np.random.default_rng(0)
    y = np.array([0] * 20 + [1] * 6)
    X = rng.random((26, 1, 8, 8), dtype=np.float32) * 0.1 + y[:, None, None, None]  # classes far apart
    X2, y2, synth = resolve("smote").resample(X, y, seed=0)
    assert X2.shape == (40, 1, 8, 8) and synth.sum() == 14 and (y2[synth] == 1).all()
    # every synthetic pixel lies inside its class's range (interpolation, not noise)
    assert X2[synth].min() >= X[y == 1].min() and X2[synth].max() <= X[y == 1].max()


def test_small_class_lowers_k_with_warning():
    X = np.random.default_rng(0).random((23, 4))
    y = np.array([0] * 20 + [1] * 3)
    b = resolve("smote", k_neighbors=5)
    with pytest.warns(UserWarning, match="lowering k_neighbors from 5 to 2"):
        _, y2, _ = b.resample(X, y, seed=0)
    assert b.k_neighbors_ == 2 and np.bincount(y2).tolist() == [20, 20]


def test_single_sample_class_is_a_clear_error():
    X = np.random.default_rng(0).random((21, 4))
    y = np.array([0] * 20 + [1])
    with pytest.raises(ConfigError, match="class 1 has 1 sample.*oversample"):
        resolve("smote").resample(X, y, seed=0)


def test_smote_embed_refuses_images_and_accepts_features():
    with pytest.raises(ConfigError, match="frozen backbone"):
        resolve("smote_embed").resample(np.zeros((10, 3, 8, 8)), np.array([0] * 7 + [1] * 3), 0)
    X = np.random.default_rng(0).normal(size=(30, 16)).astype(np.float32)
    X2, _, synth = resolve("smote_embed").resample(X, np.array([0] * 24 + [1] * 6), 0)
    assert X2.shape == (48, 16) and synth.sum() == 18
