"""Transforms against scipy.ndimage / numpy references and the group laws they must obey."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage as nd

from cnn_jax import transforms as T
from tests.numerics import assert_close, interpolation_ops


def images(key, shape=(2, 9, 8, 3)):
    return np.asarray(jax.random.normal(key, shape), np.float32)


def interior(a, border):
    return a[:, border:-border, border:-border]


# ------------------------------------------------------------------- integer shifts


@pytest.mark.parametrize("dy,dx", [(0, 0), (1, 0), (-2, 3), (9, -8), (11, 5)])
def test_shift_matches_numpy(key, variant, dy, dx):
    x = images(key)
    circ = variant(lambda a, i, j: T.shift(a, i, j, mode="circular"))(x, dy, dx)
    np.testing.assert_array_equal(circ, np.roll(x, (dy, dx), axis=(1, 2)))
    zero = variant(lambda a, i, j: T.shift(a, i, j, mode="zero"))(x, dy, dx)
    ref = nd.shift(x, (0, dy, dx, 0), order=0, mode="constant", cval=0.0)
    np.testing.assert_array_equal(zero, ref)


def test_shift_inverse_and_composition(key):
    x = images(key)
    np.testing.assert_array_equal(T.shift(T.shift(x, 2, -3), -2, 3), x)
    np.testing.assert_array_equal(T.shift(T.shift(x, 1, 2), 3, -1), T.shift(x, 4, 1))


def test_subpixel_shift_matches_scipy(key, variant):
    x = images(key)
    for mode, smode in (("zero", "grid-constant"), ("circular", "grid-wrap")):
        got = variant(lambda a, i, j, m=mode: T.subpixel_shift(a, i, j, mode=m))(x, 0.3, -1.6)
        ref = nd.shift(x, (0, 0.3, -1.6, 0), order=1, mode=smode)
        # scipy interpolates in float64 and rounds once to float32
        assert_close(got, ref, ops=interpolation_ops(9) + 1, scale=np.abs(x).max(), err_msg=mode)


def test_subpixel_shift_integer_is_shift(key):
    x = images(key)
    np.testing.assert_array_equal(T.subpixel_shift(x, 2.0, -1.0), T.shift(x, 2, -1, mode="zero"))
    np.testing.assert_array_equal(T.subpixel_shift(x, 2.0, -1.0, mode="circular"),
                                  T.shift(x, 2, -1))


# ------------------------------------------------------------------------ rotations


def test_rotate90_is_numpy_rot90_and_scipy(key, variant):
    x = images(key)
    for k in range(-1, 5):
        got = variant(lambda a, k=k: T.rotate90(a, k))(x)
        np.testing.assert_array_equal(got, np.rot90(x, k, axes=(1, 2)))
    ref = nd.rotate(x, 90, axes=(1, 2), reshape=True, order=0)
    np.testing.assert_array_equal(T.rotate90(x, 1), ref)


def test_rotate90_group_laws(key):
    x = images(key, (2, 7, 7, 2))
    np.testing.assert_array_equal(T.rotate90(T.rotate90(T.rotate90(T.rotate90(x, 1), 1), 1), 1),
                                  x)
    np.testing.assert_array_equal(T.rotate90(T.rotate90(x, 1), 2), T.rotate90(x, 3))
    np.testing.assert_array_equal(T.rotate90(T.rotate90(x, 1), -1), x)


def test_rotate90_traced_k_under_vmap(key):
    x = images(key, (3, 6, 6, 2))
    ks = jnp.array([0, 1, 3])
    got = jax.vmap(T.rotate90)(x, ks)
    for i, k in enumerate([0, 1, 3]):
        np.testing.assert_array_equal(got[i], np.rot90(x[i], k))


@pytest.mark.parametrize("angle", [17.0, 45.0, 137.0, -60.0])
def test_rotate_matches_scipy(key, variant, angle):
    x = images(key)
    got = variant(T.rotate)(x, angle)
    ref = nd.rotate(x, angle, axes=(1, 2), reshape=False, order=1, mode="grid-constant")
    assert_close(got, ref, ops=interpolation_ops(9) + 1, scale=np.abs(x).max())  # as above


def test_rotate_quarter_turns_match_rotate90(key):
    x = images(key, (2, 9, 9, 3))
    for k in (1, 2, 3, -1):  # cos and sin of a float32 quarter turn are off by ~eps
        assert_close(T.rotate(x, 90.0 * k), T.rotate90(x, k), ops=interpolation_ops(9),
                     scale=np.abs(x).max())


def rel(a, b):
    return float(np.linalg.norm(np.asarray(a) - b) / np.linalg.norm(b))


def smooth(key, shape=(1, 33, 33, 1), sigma=3.0):
    x = nd.gaussian_filter(images(key, shape), (0, sigma, sigma, 0))
    return x / x.std()


def test_rotate_composition_and_inverse_on_smooth_images(key):
    x = smooth(key)
    both = T.rotate(T.rotate(x, 20.0), 25.0)
    assert rel(interior(both, 9), interior(T.rotate(x, 45.0), 9)) < 0.03
    back = T.rotate(T.rotate(x, 30.0), -30.0)
    assert rel(interior(back, 9), interior(x, 9)) < 0.03
    assert rel(interior(T.rotate(x, 30.0), 9), interior(x, 9)) > 0.3  # not the identity


def test_rotate_traced_angle_vmap(key):
    x = images(key)
    got = jax.vmap(T.rotate)(x, jnp.array([10.0, 200.0]))
    # two programs (batched and not) compute the same samples, each with its own roundings
    assert_close(got[1], T.rotate(x[1], 200.0), ops=2 * interpolation_ops(9), scale=np.abs(x).max())


def test_flip(key):
    x = images(key)
    np.testing.assert_array_equal(T.flip(x, "horizontal"), x[:, :, ::-1])
    np.testing.assert_array_equal(T.flip(x, 1), x[:, :, ::-1])
    np.testing.assert_array_equal(T.flip(x, "vertical"), x[:, ::-1])
    np.testing.assert_array_equal(T.flip(T.flip(x, 0), 0), x)
    sq = images(key, (1, 5, 5, 1))  # vertical flip = R^2 after horizontal flip
    np.testing.assert_array_equal(T.flip(sq, "vertical"), T.rotate90(T.flip(sq, 1), 2))


# --------------------------------------------------------------------------- scales


@pytest.mark.parametrize("factor", [1.3, 2.0, 0.8])
def test_scale_matches_scipy_affine_without_antialias(key, variant, factor):
    x = images(key)
    got = variant(lambda a, f: T.scale(a, f, antialias=False))(x, factor)
    c = np.array([0, 4.0, 3.5, 0])
    inv = np.array([1, 1 / factor, 1 / factor, 1])
    ref = nd.affine_transform(x, inv, offset=c - inv * c, order=1, mode="grid-constant")
    assert_close(got, ref, ops=interpolation_ops(9) + 1, scale=np.abs(x).max())  # as for shifts


def test_scale_identity_and_up_down_inverse(key):
    x = smooth(key, (1, 32, 32, 1))
    # factor 1: integer sample positions, weights exactly 0 and 1, so exact
    np.testing.assert_array_equal(T.scale(x, 1.0), x)
    back = T.scale(T.scale(x, 1.5), 1 / 1.5)
    assert rel(interior(back, 10), interior(x, 10)) < 0.03
    assert rel(interior(T.scale(x, 1.5), 10), interior(x, 10)) > 0.3


def test_scale_antialias_is_box_triangle_average(key):
    """Shrinking by 1/2: each output averages input taps with triangle weights of width 2."""
    x = images(key, (1, 8, 8, 1))
    got = np.asarray(T.scale(x, 0.5))
    n, c = 8, 3.5
    pos = (np.arange(n) - c) * 2 + c
    w = np.maximum(0.0, 1 - np.abs(pos[:, None] - np.arange(-n, 2 * n)[None]) / 2)
    w = (w / w.sum(1, keepdims=True))[:, n:2 * n]
    ref = np.einsum("ik,nklc,jl->nijc", w, x, w)  # float64
    assert_close(got, ref, ops=interpolation_ops(8), scale=np.abs(x).max())
    # a checkerboard (all energy at Nyquist) nearly averages out when shrunk with
    # anti-aliasing, and aliases into a full-contrast pattern without it
    board = np.indices((16, 16)).sum(0) % 2
    board = board[None, :, :, None].astype(np.float32)
    smoothed = interior(T.scale(board, 0.6), 5)
    aliased = interior(T.scale(board, 0.6, antialias=False), 5)
    assert np.ptp(smoothed) < 0.05 and np.ptp(aliased) > 0.5


def test_up_down_sampling_exact(key):
    x = images(key, (2, 6, 4, 3))
    up = T.upsample2x(x)
    assert up.shape == (2, 12, 8, 3)
    np.testing.assert_array_equal(up[:, 1::2, ::2], x)
    np.testing.assert_array_equal(T.downsample2x(up), x)
    # a mean of 4: three additions and a scaling, on each side, in any order
    assert_close(T.downsample2x(x), x.reshape(2, 3, 2, 2, 2, 3).mean((2, 4)), ops=2 * 4,
                 scale=np.abs(x).max())
    with pytest.raises(ValueError, match="even"):
        T.downsample2x(images(key, (1, 5, 4, 1)))


def test_single_image_and_integer_inputs(key):
    x = images(key)
    np.testing.assert_array_equal(T.rotate(x[0], 33.0), T.rotate(x, 33.0)[0])
    u8 = (np.arange(16, dtype=np.uint8).reshape(1, 4, 4, 1))
    assert T.scale(u8, 1.0).dtype == jnp.float32
    np.testing.assert_array_equal(T.scale(u8, 1.0), u8.astype(np.float32))


# ------------------------------------------------------------------ group-axis maps


def test_p4_rotate90_is_group_act(key):
    y = images(key, (2, 5, 5, 3, 4))
    for k in range(4):
        np.testing.assert_array_equal(T.p4_rotate90(y, k), T.group_act(y, k, "p4"))
    # rolls the rotation axis: the map at rotation r + k is the rotated map at r
    np.testing.assert_array_equal(T.p4_rotate90(y, 1)[..., 1], np.rot90(y[..., 0], axes=(1, 2)))


@pytest.mark.parametrize("group", ["p4", "p4m"])
def test_group_act_is_an_action(key, group):
    """L_a L_b = L_ab and L_e = id, with products from ops.group's table."""
    from cnn_jax.ops.group import cayley_table

    y = images(key, (1, 5, 5, 2, 4 if group == "p4" else 8))
    table = cayley_table(group)
    np.testing.assert_array_equal(T.group_act(y, 0, group), y)
    for a in range(len(table)):
        for b in range(len(table)):
            np.testing.assert_array_equal(
                T.group_act(T.group_act(y, b, group), a, group), T.group_act(y, table[a, b], group)
            )


def test_scale_axis_shift_and_scale_group(key):
    y = images(key, (1, 6, 6, 2, 4))
    np.testing.assert_array_equal(T.scale_axis_shift(y, 1)[..., 1:], y[..., :3])
    np.testing.assert_array_equal(T.scale_axis_shift(y, 1)[..., 0], 0 * y[..., 0])
    np.testing.assert_array_equal(T.scale_axis_shift(y, -2)[..., :2], y[..., 2:])
    # scale_group zooms with scale(y, 2.0 ** 1): the same computation, bit for bit
    np.testing.assert_array_equal(T.scale_group(y, 2.0, 1)[..., 1:], T.scale(y, 2.0)[..., :3])


@pytest.mark.parametrize("call,match", [
    (lambda x: T.shift(x, 1, 1, mode="reflect"), "mode"),
    (lambda x: T.rotate(x, 10.0, order=3), "order"),
    (lambda x: T.scale(x, 0.0), "factor"),
    (lambda x: T.flip(x, "diagonal"), "axis"),
    (lambda x: T.rotate(x[0, 0], 10.0), "x must be"),
    (lambda x: T.p4_rotate90(x, 1), r"y must be \[N, H, W, C, 4\]"),
    (lambda x: T.group_act(x[..., None], 0, "p6"), "group must be"),
    (lambda x: T.scale_axis_shift(x[..., None], 0.5), "steps"),
])
def test_bad_arguments_raise(key, call, match):
    with pytest.raises(ValueError, match=match):
        call(images(key))


def test_per_example_magnitudes_under_vmap(key):
    """Derived datasets draw one magnitude per image: vmap over traced scalars."""
    x = images(key, (3, 8, 8, 1))
    dys, dxs = jnp.array([0, 1, -2]), jnp.array([3, 0, 1])
    got = jax.jit(jax.vmap(lambda a, i, j: T.shift(a, i, j, mode="zero")))(x, dys, dxs)
    for n in range(3):
        np.testing.assert_array_equal(got[n], T.shift(x[n], int(dys[n]), int(dxs[n]), mode="zero"))
    factors = jnp.array([0.5, 1.0, 1.7])
    zoomed = jax.jit(jax.vmap(T.scale))(x, factors)
    # each pair: two programs (batched and not), each with its own roundings
    ops, scale = 2 * interpolation_ops(8), np.abs(x).max()
    for n in range(3):
        assert_close(zoomed[n], T.scale(x[n], float(factors[n])), ops=ops, scale=scale)
    moved = jax.vmap(T.subpixel_shift)(x, jnp.array([0.5, 0.0, 1.25]), jnp.zeros(3))
    assert_close(moved[2], T.subpixel_shift(x[2], 1.25, 0.0), ops=ops, scale=scale)
