"""Sobel filters against scipy.ndimage and hand-computed edges."""

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage

from cnn_jax import ops


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
    np.testing.assert_allclose({"gx": gx, "gy": gy}[name], expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(mag, np.hypot(gx, gy), rtol=1e-6)


def test_many_filters_give_one_activation_map_each():
    image = np.random.default_rng(1).standard_normal((1, 10, 10, 1)).astype(np.float32)
    bank = jnp.stack([ops.SOBEL_X, ops.SOBEL_Y, jnp.ones((3, 3)) / 9], -1)[:, :, None, :]
    maps = ops.conv2d(image, bank, padding="same")
    assert maps.shape == (1, 10, 10, 3)
    gx, gy, _ = ops.sobel_edges(image[0, ..., 0])
    np.testing.assert_allclose(maps[0, ..., 0], gx, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(maps[0, ..., 1], gy, rtol=1e-5, atol=1e-5)
