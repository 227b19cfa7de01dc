"""Pooling: reshape fast path against lax.reduce_window and hand-computed cases."""

import functools
import re

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


@pytest.mark.parametrize("shape, window",
                         [((2, 8, 8, 3), 2), ((2, 13, 13, 4), 2), ((1, 9, 7, 2), (3, 2)),
                          ((1, 6, 9, 1), (2, 3))])
def test_max_pool_ties_send_the_gradient_to_the_first_maximum_like_reduce_window(shape, window,
                                                                                 key):
    # small integers: most windows hold ties (after a ReLU, all-zero windows are common)
    x = jnp.maximum(jnp.round(jax.random.normal(key, shape)), 0.0)
    fast = jax.jit(lambda a: ops.max_pool2d(a, window, impl="reshape"))
    slow = jax.jit(lambda a: ops.max_pool2d(a, window, impl="xla"))
    cot = jax.random.normal(jax.random.fold_in(key, 1), fast(x).shape)
    g_fast = jax.grad(lambda a: jnp.vdot(fast(a), cot))(x)
    g_slow = jax.grad(lambda a: jnp.vdot(slow(a), cot))(x)
    np.testing.assert_array_equal(fast(x), slow(x))
    np.testing.assert_array_equal(g_fast, g_slow)  # copies of cot entries, or zeros: exact


def test_max_pool_gradient_of_constant_windows_goes_to_the_top_left_tap(variant):
    x = jnp.ones((1, 5, 6, 1))  # 2x3 windows; row 4 is the cropped remainder
    grad = variant(jax.grad(lambda a: ops.max_pool2d(a, (2, 3)).sum()))(x)[0, ..., 0]
    expected = np.zeros((5, 6))
    expected[0, 0] = expected[0, 3] = expected[2, 0] = expected[2, 3] = 1.0
    np.testing.assert_array_equal(grad, expected)


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


def test_a_window_as_large_as_the_input_fits_in_valid_padding():
    x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    np.testing.assert_array_equal(ops.max_pool2d(x, 4)[0, ..., 0], [[15]])
    np.testing.assert_array_equal(ops.max_pool2d(x, (4, 2))[0, ..., 0], [[13, 15]])
    np.testing.assert_array_equal(ops.avg_pool2d(x, (2, 4))[0, ..., 0], [[3.5], [11.5]])


@pytest.mark.parametrize("window", [(3, 1), (1, 3)])
def test_a_window_larger_than_the_input_along_one_axis_is_refused(window):
    with pytest.raises(ValueError, match=re.escape(f"window {window} is larger than the input "
                                                   "(2, 2) in padding='valid'")):
        ops.max_pool2d(jnp.ones((1, 2, 2, 1)), window)


def test_same_padding_ignores_the_padding_for_max_and_mean():
    # all values negative: a zero padding value would win the max at the border.
    x = -1.0 - jnp.arange(9.0).reshape(1, 3, 3, 1)
    # window 2 stride 2 'same' on 3 pixels: windows {0, 1} and {2} (+ one padded) per axis
    np.testing.assert_array_equal(ops.max_pool2d(x, 2, padding="same")[0, ..., 0],
                                  [[-1, -3], [-7, -9]])
    np.testing.assert_array_equal(ops.avg_pool2d(x, 2, padding="same")[0, ..., 0],
                                  [[-3, -4.5], [-7.5, -9]])  # small multiples of 1/2: exact


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_pooling_keeps_the_input_dtype(dtype):
    # Traced, not run: the output dtype is fixed at trace time, and XLA:CPU capped below F16C
    # (make test-isa) cannot compile float16 conversions at all (LLVM: __truncsfhf2 missing).
    x = jax.ShapeDtypeStruct((1, 5, 5, 1), dtype)
    for pool in (ops.max_pool2d, ops.avg_pool2d):
        assert jax.eval_shape(functools.partial(pool, window=3, stride=2, padding="same"),
                              x).dtype == dtype
        assert jax.eval_shape(functools.partial(pool, window=2), x).dtype == dtype


def test_auto_takes_the_reshape_path_for_tiled_windows_only():
    """auto: reshape + reduce for non-overlapping windows (its gradient is a broadcast);
    reduce_window otherwise, and always for impl='xla' (module docstring of the op)."""
    x = jnp.ones((1, 6, 6, 1))
    program = lambda **kw: str(jax.make_jaxpr(lambda a: ops.max_pool2d(a, **kw))(x))
    assert "reduce_window" not in program(window=2)
    assert "reduce_window" not in program(window=2, impl="reshape")
    assert "reduce_window" in program(window=2, impl="xla")
    assert "reduce_window" in program(window=3, stride=2)
    assert "reduce_window" in program(window=2, padding="same")


def test_global_avg_pool_averages_each_example_and_channel():
    x = jnp.arange(24.0).reshape(2, 2, 2, 3)  # x[n, i, j, c] = 12 n + 6 i + 3 j + c
    np.testing.assert_array_equal(ops.global_avg_pool(x), [[4.5, 5.5, 6.5], [16.5, 17.5, 18.5]])


@pytest.mark.parametrize(
    "call, message",
    [(lambda: ops.max_pool2d(jnp.ones((4, 4)), 2), "x must be 4-D [N, H, W, C], got shape (4, 4)"),
     (lambda: ops.global_avg_pool(jnp.ones((4, 4))),
      "x must be 4-D [N, H, W, C], got shape (4, 4)"),
     (lambda: ops.avg_pool2d(jnp.ones((1, 4, 4, 1)), 2, 0),
      "stride must be a positive int or a sequence of 2 positive ints, got 0"),
     (lambda: ops.avg_pool2d(jnp.ones((1, 4, 4, 1)), 2, impl="fft"),
      "impl must be 'auto', 'xla' or 'reshape', got 'fft'")],
)
def test_pool_error_messages_name_the_argument_and_value(call, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        call()
