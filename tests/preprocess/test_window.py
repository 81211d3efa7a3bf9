import numpy as np
import pytest

from ctnodule.data.slice import Slice
from ctnodule.errors import DataError
from ctnodule.preprocess.window import Window, window_array

from .synth import nodule_crop


def test_window_maps_level_and_edges_to_unit_range():
    hu = np.array([[-1350, -600], [150, 3000]], dtype=np.int16)
    out = window_array(hu, level=-600, width=1500)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0.0, 0.5], [1.0, 1.0]], atol=1e-6)


def test_window_step_output_in_unit_range_and_input_untouched(rng):
    s = nodule_crop(rng)
    before = s.array.copy()
    out = Window()(s)
    assert out is not s and out.array.min() >= 0 and out.array.max() <= 1
    np.testing.assert_array_equal(s.array, before)
    assert out.spacing == s.spacing and out.mask is s.mask


def test_window_is_configurable_per_view(rng):
    s = nodule_crop(rng)
    lung, mediastinal = Window(-600, 1500)(s).array, Window(40, 400)(s).array
    assert not np.allclose(lung, mediastinal)
    assert (mediastinal == 0).mean() > (lung == 0).mean()  # parenchyma is black in a soft-tissue window


@pytest.mark.parametrize("array", [
    np.full((8, 8), 120, np.uint8),                       # PNG/JPEG export
    np.linspace(0, 255, 64).reshape(8, 8),                # 8-bit values stored as float
    np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8),  # already normalised
])
def test_window_refuses_8bit_or_normalised_input(array):
    with pytest.raises(DataError, match="not Hounsfield|not HU"):
        Window()(Slice(array, (0.7, 0.7), {"sample_id": "x"}))


def test_window_8bit_check_can_be_turned_off():
    out = Window(check_hu=False)(Slice(np.full((8, 8), 100, np.uint8)))
    assert out.array.dtype == np.float32


@pytest.mark.parametrize("array, match", [
    (np.array([[np.nan, 0.0], [-1000.0, 5.0]]), "NaN"),
    (np.array([[np.inf, 0.0], [-1000.0, 5.0]]), "NaN or infinite"),
    (np.zeros((4, 4, 4, 4)), "shape"),
    (np.zeros(16), "shape"),
    (np.zeros((4, 4), dtype=bool), "dtype"),
    (np.zeros((4, 4), dtype=complex), "dtype"),
])
def test_bad_input_is_a_data_error(array, match):
    with pytest.raises(DataError, match=match):
        Window()(Slice(array, (0.7, 0.7), {"sample_id": "bad"}))


def test_bad_spacing_is_a_data_error():
    with pytest.raises(DataError, match="spacing"):
        Window()(Slice(np.full((4, 4), -800, np.int16), (0.0, 0.7)))
