"""BlurPool against scipy.ndimage filters followed by subsampling."""

import jax
import numpy as np
import pytest
import scipy.ndimage as nd
from scipy.special import comb

from cnn_jax import ops
from cnn_jax.ops import blur as B
from tests.numerics import assert_close


@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_binomial_filter(size):
    row = np.array([comb(size - 1, k) for k in range(size)])
    # binomial coefficients over a power of two: exact in float32 for these sizes
    np.testing.assert_array_equal(B.binomial_filter(size), np.outer(row, row) / row.sum() ** 2)


# numpy's and jnp's "reflect" (d c b | a b c d) is scipy's "mirror"
@pytest.mark.parametrize("padding,mode", [("same", "constant"), ("circular", "wrap"),
                                          ("reflect", "mirror")])
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
    with pytest.raises(ValueError, match="padding"):
        B.blur_pool2d(np.zeros((1, 4, 4, 1)), padding="edge")
    with pytest.raises(ValueError, match="window"):
        B.max_blur_pool2d(np.zeros((1, 4, 4, 1)), 5)
    with pytest.raises(ValueError, match="4-D"):
        B.blur_pool2d(np.zeros((4, 4, 1)))


def dense_max(x, wh, ww):
    """numpy reference: max over every whole wh x ww window (stride 1, no padding)."""
    h, w = x.shape[1] - wh + 1, x.shape[2] - ww + 1
    return np.stack([np.stack([x[:, i:i + wh, j:j + ww].max(axis=(1, 2)) for j in range(w)], 1)
                     for i in range(h)], 1)


@pytest.mark.parametrize("padding,mode", [("reflect", "mirror"), ("same", "constant")])
@pytest.mark.parametrize("height,width", [(9, 9), (8, 7), (7, 10)])
@pytest.mark.parametrize("window,stride", [(2, 2), (3, 2), (3, 3)])
def test_max_blur_pool_has_max_pool_size_and_zhang_values(key, padding, mode, height, width,
                                                          window, stride):
    """Zhang (2019): dense max over whole windows, blur, subsample -- max-pool's floor size."""
    x = np.asarray(jax.random.normal(key, (2, height, width, 3)))
    got = B.max_blur_pool2d(x, window, stride=stride, padding=padding)
    assert got.shape == ops.max_pool2d(x, window, stride).shape
    assert got.shape[1:3] == ((height - window) // stride + 1, (width - window) // stride + 1)
    blurred = nd.correlate(dense_max(x, window, window), B.binomial_filter(3)[None, :, :, None],
                           mode=mode)
    # the max is exact; then as blur_pool2d above
    assert_close(got, blurred[:, ::stride, ::stride], ops=10, scale=np.abs(x).max())


def test_reflect_padding_keeps_a_constant_image_constant():
    # Exact by construction: the taps are k/16 (powers of two times small integers) and an
    # all-ones image makes every partial sum a multiple of 1/16 of at most 1, exact in float32 in
    # any order; so these compare with ==.
    ones = np.ones((1, 9, 8, 1), np.float32)
    for padding in ("reflect", "circular"):
        np.testing.assert_array_equal(B.blur_pool2d(ones, padding=padding), 1.0)
        np.testing.assert_array_equal(B.max_blur_pool2d(ones, padding=padding), 1.0)
    same = np.asarray(B.blur_pool2d(ones, padding="same"))[0, :, :, 0]  # zeros darken the edge
    np.testing.assert_array_equal([same[0, 0], same[0, 1], same[1, 1]], [0.5625, 0.75, 1.0])
    np.testing.assert_array_equal(B.blur_pool2d(ones), B.blur_pool2d(ones, padding="reflect"))
