"""BlurPool against scipy.ndimage filters followed by subsampling."""

import jax
import numpy as np
import pytest
import scipy.ndimage as nd
from scipy.special import comb

from cnn_jax.ops import blur as B
from tests.numerics import assert_close


@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_binomial_filter(size):
    row = np.array([comb(size - 1, k) for k in range(size)])
    # binomial coefficients over a power of two: exact in float32 for these sizes
    np.testing.assert_array_equal(B.binomial_filter(size), np.outer(row, row) / row.sum() ** 2)


@pytest.mark.parametrize("padding,mode", [("same", "constant"), ("circular", "wrap")])
def test_blur_pool_is_filter_then_subsample(key, variant, padding, mode):
    x = np.asarray(jax.random.normal(key, (2, 10, 9, 3)))
    got = variant(lambda a: B.blur_pool2d(a, filter_size=3, stride=2, padding=padding))(x)
    blurred = nd.correlate(x, B.binomial_filter(3)[None, :, :, None], mode=mode)
    # 9 taps summing to 1 (partial sums <= max|x|), plus scipy's rounding to float32
    assert_close(got, blurred[:, ::2, ::2], ops=10, scale=np.abs(x).max())


def test_max_blur_pool_is_dense_max_then_blur_pool(key):
    x = np.asarray(jax.random.normal(key, (1, 8, 8, 2)))
    got = B.max_blur_pool2d(x, 2, padding="circular")
    dense = nd.maximum_filter(x, size=(1, 2, 2, 1), origin=(0, -1, -1, 0), mode="wrap")
    blurred = nd.correlate(dense, B.binomial_filter(3)[None, :, :, None], mode="wrap")
    # the max is exact; then as blur_pool2d above
    assert_close(got, blurred[:, ::2, ::2], ops=10, scale=np.abs(x).max())


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="size"):
        B.binomial_filter(0)
    with pytest.raises(ValueError, match="padding"):
        B.max_blur_pool2d(np.zeros((1, 4, 4, 1)), padding="valid")
    with pytest.raises(ValueError, match="4-D"):
        B.blur_pool2d(np.zeros((4, 4, 1)))
