import numpy as np

from ctnodule.balance import resolve


def test_images_keep_their_shape_and_pixels():
    rng = np.random.default_rng(1)
    X = rng.random((25, 3, 16, 16), dtype=np.float32)
    y = np.array([0] * 20 + [1] * 5)
    for name, n in (("oversample", 40), ("undersample", 10)):
        b = resolve(name)
        X2, y2, synth = b.resample(X, y, seed=0)
        assert X2.shape == (n, 3, 16, 16) and not synth.any()
        np.testing.assert_array_equal(X2, X[b.sample_indices_])
        assert np.bincount(y2).tolist() == [n // 2, n // 2]
