"""Sobel filters against scipy.ndimage and hand-computed edges."""

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage

from cnn_jax import ops
from tests.numerics import assert_close


def test_sobel_x_finds_vertical_edges_and_sobel_y_horizontal_ones():
    vertical_step = jnp.zeros((6, 6)).at[:, 3:].set(1.0)
    gx, gy, mag = ops.sobel_edges(vertical_step, padding="valid")
    # interior 4x4 output: columns 1, 2 straddle the step, each with weight 1 + 2 + 1.
    np.testing.assert_array_equal(gx, [[0, 4, 4, 0]] * 4)
    np.testing.assert_array_equal(gy, np.zeros((4, 4)))
    np.testing.assert_array_equal(mag, gx)
    gx_t, gy_t, _ = ops.sobel_edges(vertical_step.T, padding="valid")
    np.testing.assert_array_equal(gy_t, np.asarray(gx).T)
    np.testing.assert_array_equal(gx_t, np.zeros((4, 4)))


@pytest.mark.parametrize("axis, name", [(1, "gx"), (0, "gy")])
def test_sobel_matches_scipy_ndimage(axis, name):
    image = np.random.default_rng(0).standard_normal((12, 9)).astype(np.float32)
    gx, gy, mag = ops.sobel_edges(image)
    expected = scipy.ndimage.sobel(image.astype(np.float64), axis=axis, mode="constant")
    # float32 sum of 9 taps against float64; every |partial sum| <= sum|kernel| max|x| = 8 max|x|
    assert_close({"gx": gx, "gy": gy}[name], expected, ops=9, scale=8 * np.abs(image).max())
    # sqrt(gx^2 + gy^2): two squares, a sum and a root, against hypot (correctly rounded)
    assert_close(mag, np.hypot(gx, gy), ops=5)


def test_many_filters_give_one_activation_map_each():
    image = np.random.default_rng(1).standard_normal((1, 10, 10, 1)).astype(np.float32)
    bank = jnp.stack([ops.SOBEL_X, ops.SOBEL_Y, jnp.ones((3, 3)) / 9], -1)[:, :, None, :]
    maps = ops.conv2d(image, bank, padding="same")
    assert maps.shape == (1, 10, 10, 3)
    gx, gy, _ = ops.sobel_edges(image[0, ..., 0])
    # two float32 sums of 9 taps each, in whatever order each path takes
    scale = 8 * np.abs(image).max()
    assert_close(maps[0, ..., 0], gx, ops=18, scale=scale)
    assert_close(maps[0, ..., 1], gy, ops=18, scale=scale)
