import numpy as np
import pytest

from ctnodule.data.slice import Slice
from ctnodule.errors import DataError
from ctnodule.preprocess.gamma import Gamma


def test_gamma_fixes_ends_darkens_midtones_and_is_monotone():
    x = np.linspace(0, 1, 101, dtype=np.float32).reshape(1, -1).repeat(2, 0)
    y = Gamma(1.35)(Slice(x)).array
    assert y.dtype == np.float32
    assert y[0, 0] == 0 and y[0, -1] == pytest.approx(1.0)
    assert (y[:, 1:-1] < x[:, 1:-1]).all()
    assert (np.diff(y[0]) > 0).all()


def test_gamma_one_is_identity():
    x = np.random.default_rng(0).random((8, 8)).astype(np.float32)
    np.testing.assert_allclose(Gamma(1.0)(Slice(x)).array, x, rtol=1e-6)


def test_gamma_refuses_hu_input():
    with pytest.raises(DataError, match="window"):
        Gamma()(Slice(np.full((4, 4), -800.0, np.float32)))
