"""Slices -> network input: grey repeated to 3 channels, 2.5D stacks reduced to the middle three."""

from __future__ import annotations

import numpy as np
import pytest

from ctnodule.data.slice import Slice
from ctnodule.errors import DataError
from ctnodule.preprocess.inputs import middle_three, to_images


def test_grey_slices_become_three_identical_channels():
    a = np.random.default_rng(0).random((8, 8)).astype(np.float32)
    x = to_images([Slice(a), Slice(a * 0.5)])
    assert x.shape == (2, 3, 8, 8) and np.array_equal(x[0, 0], x[0, 2])


def test_middle_three_of_a_five_stack():
    stack = np.arange(5)[:, None, None] * np.ones((5, 4, 4))
    assert middle_three(stack)[:, 0, 0].tolist() == [1, 2, 3]
    with pytest.raises(DataError):
        middle_three(np.zeros((2, 4, 4)))


def test_mixed_sizes_and_empty_input_are_errors():
    with pytest.raises(DataError, match="differ in shape"):
        to_images([Slice(np.zeros((8, 8), np.float32)), Slice(np.zeros((9, 8), np.float32))])
    with pytest.raises(DataError, match="no samples"):
        to_images([])
