"""Pooling: reshape fast path against lax.reduce_window and hand-computed cases."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_jax import ops
from tests.numerics import assert_close


def test_max_and_avg_pool_hand_computed(variant):
    x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    np.testing.assert_array_equal(variant(lambda a: ops.max_pool2d(a, 2))(x)[0, ..., 0],
                                  [[5, 7], [13, 15]])
    np.testing.assert_array_equal(variant(lambda a: ops.avg_pool2d(a, 2))(x)[0, ..., 0],
                                  [[2.5, 4.5], [10.5, 12.5]])
    np.testing.assert_array_equal(ops.global_avg_pool(x), [[7.5]])


@pytest.mark.parametrize("pool", [ops.max_pool2d, ops.avg_pool2d])
@pytest.mark.parametrize("shape, window",
                         [((2, 8, 8, 3), 2), ((2, 13, 13, 4), 2), ((1, 9, 7, 2), (3, 2))])
def test_reshape_path_matches_reduce_window_values_and_gradients(pool, shape, window, key):
    x = jax.random.normal(key, shape)
    fast = jax.jit(lambda a: pool(a, window, impl="reshape"))
    slow = jax.jit(lambda a: pool(a, window, impl="xla"))
    cot = jax.random.normal(jax.random.fold_in(key, 1), fast(x).shape)
    g_fast = jax.grad(lambda a: jnp.vdot(fast(a), cot))(x)
    g_slow = jax.grad(lambda a: jnp.vdot(slow(a), cot))(x)
    if pool is ops.max_pool2d:  # max selects an input, its gradient routes a copy: exact
        np.testing.assert_array_equal(fast(x), slow(x))
        np.testing.assert_array_equal(g_fast, g_slow)
    else:  # a window sum and one scaling on each side; the gradient: one scaling each
        size = np.prod(np.broadcast_to(window, 2))
        assert_close(fast(x), slow(x), ops=2 * (size + 1), scale=np.abs(x).max())
        assert_close(g_fast, g_slow, ops=2)


def test_overlapping_and_same_pooling_use_reduce_window():
    x = jnp.arange(25.0).reshape(1, 5, 5, 1)
    out = ops.max_pool2d(x, 3, 2, padding="same")
    np.testing.assert_array_equal(out[0, ..., 0], [[6, 8, 9], [16, 18, 19], [21, 23, 24]])
    avg = ops.avg_pool2d(x, 3, 2, padding="same")  # edges average only real pixels
    np.testing.assert_array_equal(avg[0, 0, 0, 0], np.mean([0, 1, 5, 6]))  # small integers


@pytest.mark.parametrize(
    "call, match",
    [(lambda: ops.max_pool2d(jnp.ones((4, 4)), 2), r"x must be 4-D"),
     (lambda: ops.max_pool2d(jnp.ones((1, 4, 4, 1)), 0), r"window must be .* got 0"),
     (lambda: ops.max_pool2d(jnp.ones((1, 4, 4, 1)), 2, padding="full"), r"padding .*'full'"),
     (lambda: ops.max_pool2d(jnp.ones((1, 4, 4, 1)), 3, 2, impl="reshape"), r"impl='reshape'"),
     (lambda: ops.avg_pool2d(jnp.ones((1, 2, 2, 1)), 3), r"larger than the input")],
)
def test_pool_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
