import numpy as np
import pytest

from ctnodule.data.slice import Slice
from ctnodule.preprocess.base import NotFittedError
from ctnodule.preprocess.noise import NoiseFilter, laplacian_variance


def _img(rng, noise):
    x = np.clip(0.5 + noise * rng.standard_normal((32, 32)), 0, 1).astype(np.float32)
    return Slice(x, (0.7, 0.7), {"sample_id": f"s{noise:.3f}"})


def test_laplacian_variance_orders_noise_and_is_zero_on_constant(rng):
    assert laplacian_variance(np.full((16, 16), 0.3, np.float32)) == 0.0
    assert laplacian_variance(_img(rng, 0.2).array) > laplacian_variance(_img(rng, 0.02).array) > 0


def test_threshold_is_learned_on_train_only_and_drops_the_noisiest(rng):
    train = [_img(rng, n) for n in rng.uniform(0.01, 0.1, 200)]
    step = NoiseFilter(percentile=98.0).fit(train)
    var = np.array([laplacian_variance(s.array) for s in train])
    assert step.threshold_ == pytest.approx(np.percentile(var, 98.0))
    kept = np.array([step(s).meta["noise_keep"] for s in train])
    assert 0.01 <= 1 - kept.mean() <= 0.03
    # test slices are judged by the training threshold, and judging them does not change it
    test = [_img(rng, 0.3) for _ in range(5)]
    out = [step(s) for s in test]
    assert not any(o.meta["noise_keep"] for o in out)
    assert all("percentile" in o.meta["noise_reason"] for o in out)
    assert step.threshold_ == pytest.approx(np.percentile(var, 98.0))


def test_constant_slice_is_dropped_with_a_reason(rng):
    step = NoiseFilter().fit([_img(rng, 0.05) for _ in range(20)])
    out = step(Slice(np.zeros((32, 32), np.float32), meta={"sample_id": "blank"}))
    assert out.meta["noise_keep"] is False and "constant" in out.meta["noise_reason"]
    np.testing.assert_array_equal(out.array, 0)


def test_unfitted_noise_filter_says_what_to_call(rng):
    with pytest.raises(NotFittedError, match="fit"):
        NoiseFilter()(_img(rng, 0.05))
