import cv2
import numpy as np

from ctnodule.data.slice import Slice
from ctnodule.preprocess.clahe import Clahe


def test_clahe_matches_opencv_and_stays_in_range():
    rng = np.random.default_rng(0)
    x = np.clip(0.4 + 0.05 * rng.standard_normal((64, 64)), 0, 1).astype(np.float32)
    out = Clahe(2.5, (8, 8))(Slice(x)).array
    assert out.dtype == np.float32 and out.shape == x.shape and 0 <= out.min() and out.max() <= 1
    ref = cv2.createCLAHE(2.5, (8, 8)).apply(np.rint(x * 255).astype(np.uint8)) / 255.0
    np.testing.assert_allclose(out, ref, atol=1e-6)
    assert out.std() > 2 * x.std()  # a low-contrast image gains contrast


def test_clahe_applies_per_slice_of_a_stack():
    rng = np.random.default_rng(1)
    stack = rng.random((3, 32, 32)).astype(np.float32)
    out = Clahe()(Slice(stack)).array
    assert out.shape == stack.shape
    np.testing.assert_array_equal(out[1], Clahe()(Slice(stack[1])).array)


def test_clahe_16_bit():
    x = np.random.default_rng(2).random((32, 32)).astype(np.float32)
    out = Clahe(bits=16)(Slice(x)).array
    assert out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
