"""Hermite-Gaussian basis against numpy's Hermite series; scale convs against per-scale loops."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpy.polynomial import hermite

from cnn_jax import layers, ops
from cnn_jax.ops import scale as S
from tests.numerics import assert_close


def test_ladder():
    assert S.scale_ladder(1.5, 2.0, 3) == (1.5, 3.0, 6.0)  # powers of two: exact


def test_basis_matches_numpy_hermite_and_scales_as_one_over_sigma_squared():
    basis = S.hermite_gaussian_basis(9, (1.0, 2.0), order=2)
    assert basis.shape == (2, 9, 9, 6)
    u = np.arange(9) - 4.0
    degrees = [(0, 0), (0, 1), (1, 0), (0, 2), (1, 1), (2, 0)]
    for b, (p, q) in enumerate(degrees):
        for s, sigma in enumerate((1.0, 2.0)):
            cp, cq = np.eye(3)[p], np.eye(3)[q]
            ref = np.outer(hermite.hermval(u / sigma, cp), hermite.hermval(u / sigma, cq))
            ref *= np.exp(-0.5 * (u[:, None] ** 2 + u[None] ** 2) / sigma**2) / sigma**2
            ratio = basis[s, :, :, b] / np.where(ref == 0, 1, ref)
            scale = ratio[ref != 0]
            # proportional: each ratio carries one float32 rounding (the cast), the first too
            assert_close(scale, np.full_like(scale, scale[0]), ops=2, dtype=np.float32)
        # 81 float32 squares summed, a root, and the cast of each value
        assert_close(np.linalg.norm(basis[0, :, :, b]), 1.0, ops=84, dtype=np.float32)
    # the same normalisation at every scale: coefficients ratio is the 1/sigma^2 law
    centre = basis[:, 4, 4, 0]
    assert_close(centre[1] / centre[0], 0.25, ops=3)  # two casts and a division


def test_lifting_is_one_conv_per_scale(key, variant):
    k1, k2 = jax.random.split(key)
    x = jax.random.normal(k1, (2, 8, 8, 3))
    w = jax.random.normal(k2, (3, 4, 6))
    basis = jnp.asarray(S.hermite_gaussian_basis(5, (0.8, 1.2, 1.8)))
    got = variant(lambda a, c: S.scale_lifting_conv2d(a, c, basis))(x, w)
    assert got.shape == (2, 8, 8, 4, 3)
    for s in range(3):
        kernel = jnp.einsum("ijb,cob->ijco", basis[s], w)
        ref = ops.conv2d(x, kernel, padding="same", impl="xla", precision="highest")
        # per side: a kernel from 6 basis functions, then 5*5*3 = 75 products per output
        assert_close(got[..., s], ref, ops=2 * (6 + 75))


@pytest.mark.parametrize("span", [1, 2])
def test_scale_conv_matches_sum_over_neighbouring_scales(key, span):
    k1, k2 = jax.random.split(key)
    y = jax.random.normal(k1, (1, 7, 7, 2, 3))
    w = jax.random.normal(k2, (2, span, 3, 6))
    basis = jnp.asarray(S.hermite_gaussian_basis(5, (0.8, 1.2, 1.8)))
    got = S.scale_conv2d(y, w, basis)
    for s in range(3):
        ref = 0.0
        for j in range(span):
            if s + j < 3:
                kernel = jnp.einsum("ijb,cob->ijco", basis[s], w[:, j])
                ref = ref + ops.conv2d(y[..., s + j], kernel, padding="same", impl="xla",
                                       precision="highest")
        # per side: kernels from 6 basis functions, then span * 5*5*2 products per output
        assert_close(got[..., s], ref, ops=2 * (6 + span * 50))


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="size"):
        S.hermite_gaussian_basis(4, (1.0,))
    with pytest.raises(ValueError, match="scales"):
        S.hermite_gaussian_basis(5, (0.0,))
    with pytest.raises(ValueError, match="num_scales"):
        S.scale_ladder(1.0, 2.0, 0)
    basis = jnp.asarray(S.hermite_gaussian_basis(3, (1.0, 2.0)))
    with pytest.raises(ValueError, match="basis has 2 scales"):
        S.scale_conv2d(jnp.zeros((1, 4, 4, 1, 3)), jnp.zeros((1, 1, 1, 6)), basis)
    with pytest.raises(ValueError, match="weights"):
        S.scale_lifting_conv2d(jnp.zeros((1, 4, 4, 1)), jnp.zeros((1, 1, 5)), basis)


@pytest.mark.parametrize("sigma, order", [(1.6, 0), (1.6, 2), (0.8, 2), (2.0, 1), (3.0, 3)])
def test_kernel_size_for_is_the_smallest_window_within_tolerance(sigma, order):
    """Against scipy: the norm fraction of every Hermite factor beyond K / 2 pixels."""
    from scipy.integrate import quad
    from scipy.special import eval_hermite

    def outside(size):
        fractions = []
        for n in range(order + 1):
            density = lambda t, n=n: eval_hermite(n, t) ** 2 * np.exp(-t * t)
            tail = quad(density, size / (2 * sigma), np.inf)[0]
            fractions.append(np.sqrt(tail / quad(density, 0, np.inf)[0]))
        return max(fractions)

    size = S.kernel_size_for(sigma, order, tol=0.01)
    assert size % 2 == 1
    assert outside(size) <= 0.01 < outside(size - 2)


def test_scale_layers_derive_their_default_window():
    layer = layers.ScaleLiftingConv(2, num_scales=3, sigma0=0.8, ratio=2**0.5)
    assert layer.basis().shape == (3, 13, 13, 6)
    with pytest.raises(ValueError, match="tol"):
        S.kernel_size_for(1.0, 2, tol=0.0)


def _both_methods(fn, args, cotangent_key):
    """Values and input/weight gradients (vjp of a random cotangent) of the separable and
    the bank (one block-bank conv, XLA's conv at the highest precision) methods."""
    results = []
    for method, impl in (("separable", "auto"), ("bank", "xla")):
        out, vjp = jax.vjp(lambda *a, m=method, i=impl: fn(*a, method=m, impl=i), *args)
        cot = jax.random.normal(cotangent_key, out.shape)
        results.append((out, *vjp(cot)))
    return results


@pytest.mark.parametrize("padding", ["same", "valid", "full", "circular"])
@pytest.mark.parametrize("span", [1, 2])
def test_separable_scale_conv_matches_the_bank_in_value_and_gradient(key, padding, span):
    """The separable method (banded passes + one mixing product) against the previous
    implementation, a block filter bank through lax.conv_general_dilated."""
    k1, k2, k3 = jax.random.split(key, 3)
    y = jax.random.normal(k1, (2, 9, 8, 3, 3))  # H != W: the two passes are not swapped
    w = jax.random.normal(k2, (3, span, 4, 6))
    basis = S.hermite_gaussian_basis(5, (0.8, 1.2, 1.8))
    fn = lambda a, c, **kw: S.scale_conv2d(a, c, basis, padding=padding, precision="highest",
                                           **kw)
    (out, gy, gw), (ref, ry, rw) = _both_methods(fn, (y, w), k3)
    assert out.shape == ref.shape
    # per side: 2 passes of <= 5 taps and 6 * 3 * span products, or 6 + 25 * 3 * span
    ops = 2 * (10 + 18 * span + 6 + 75 * span)
    assert_close(out, ref, ops=ops)
    assert_close(gy, ry, ops=ops + 2 * 4 * 6)  # and the sum over the 4 outputs' channels
    assert_close(gw, rw, ops=ops + 2 * 2 * 9 * 8 * 3)  # and the sum over images and pixels


@pytest.mark.parametrize("padding", ["same", "valid", "circular"])
def test_separable_lifting_matches_the_bank_in_value_and_gradient(key, padding):
    k1, k2, k3 = jax.random.split(key, 3)
    x = jax.random.normal(k1, (2, 10, 7, 2))
    w = jax.random.normal(k2, (2, 5, 6))
    basis = S.hermite_gaussian_basis(7, (0.8, 1.3))
    fn = lambda a, c, **kw: S.scale_lifting_conv2d(a, c, basis, padding=padding,
                                                   precision="highest", **kw)
    (out, gx, gw), (ref, rx, rw) = _both_methods(fn, (x, w), k3)
    ops = 2 * (14 + 12 + 6 + 98)
    assert_close(out, ref, ops=ops)
    assert_close(gx, rx, ops=ops + 2 * 5 * 2 * 6)
    assert_close(gw, rw, ops=ops + 2 * 2 * 10 * 7 * 2)


def test_method_auto_falls_back_to_the_bank_for_a_basis_it_cannot_factor(key):
    k1, k2, k3 = jax.random.split(key, 3)
    y = jax.random.normal(k1, (1, 6, 6, 2, 2))
    w = jax.random.normal(k2, (2, 1, 3, 4))
    dense = jax.random.normal(k3, (2, 3, 3, 4))  # random 3x3 functions: rank 3, not 1
    ref = S.scale_conv2d(y, w, dense, method="bank", impl="xla", precision="highest")
    assert_close(S.scale_conv2d(y, w, dense, precision="highest"), ref, ops=2 * (4 + 18))
    with pytest.raises(ValueError, match="rank one"):
        S.scale_conv2d(y, w, dense, method="separable")
    # a traced basis has no values to factor: "auto" takes the bank (a conv) for it
    basis = S.hermite_gaussian_basis(3, (1.0, 1.5), order=1)  # B = 3
    w3 = w[..., :3]
    auto = lambda b: S.scale_conv2d(y, w3, b, precision="highest")
    assert "conv_general_dilated" in str(jax.make_jaxpr(auto)(basis))
    assert "conv_general_dilated" not in str(jax.make_jaxpr(lambda: auto(basis))())
    assert_close(jax.jit(auto)(basis), auto(basis), ops=2 * (6 + 6 + 9 + 3 * 2 * 9))
    with pytest.raises(ValueError, match="method"):
        S.scale_conv2d(y, w, dense, method="fft")


@pytest.mark.parametrize("method", ["separable", "bank"])
@pytest.mark.parametrize("layout", ["SHWNC", "SWHNC"])
@pytest.mark.parametrize("span", [1, 2])
def test_scale_major_layouts_equal_nhwcs_in_value_and_gradient(key, method, layout, span):
    """A scale-major map in, the other scale-major layout out: the same layer as on
    [N, H, W, C, S] maps, up to the order of the two banded passes."""
    k1, k2, k3 = jax.random.split(key, 3)
    y = jax.random.normal(k1, (2, 9, 8, 3, 3))  # H != W: a swapped axis changes the shape
    w = jax.random.normal(k2, (3, span, 4, 6))
    basis = S.hermite_gaussian_basis(5, (0.8, 1.2, 1.8))
    out_layout = S.LAYOUT_AFTER[layout]
    assert out_layout == {"SHWNC": "SWHNC", "SWHNC": "SHWNC"}[layout]

    def major(a, c, as_layout=layout):
        out = S.scale_conv2d(S.to_layout(a, as_layout), c, basis, precision="highest",
                             method=method, layout=as_layout)
        return S.to_nhwcs(out, S.LAYOUT_AFTER[as_layout])

    def nhwcs(a, c):
        return S.scale_conv2d(a, c, basis, precision="highest", method=method)

    results = []
    for fn in (major, nhwcs):
        out, vjp = jax.vjp(fn, y, w)
        results.append((out, *vjp(jax.random.normal(k3, out.shape))))
    (out, gy, gw), (ref, ry, rw) = results
    assert out.shape == ref.shape == (2, 9, 8, 4, 3)
    ops = 2 * (10 + 18 * span + 6 + 75 * span)  # as the separable-vs-bank test
    bound = assert_close(out, ref, ops=ops)
    assert_close(gy, ry, ops=ops + 2 * 4 * 6)
    assert_close(gw, rw, ops=ops + 2 * 2 * 9 * 8 * 3)
    # negative control: the map read with its spatial axes the wrong way round (the passes
    # along the wrong axes; the shapes agree after transposing back) is another layer
    wrong = {"SHWNC": "SWHNC", "SWHNC": "SHWNC"}[layout]
    bad = S.scale_conv2d(S.to_layout(y, layout), w, basis, precision="highest",
                         method=method, layout=wrong)
    bad = jnp.swapaxes(S.to_nhwcs(bad, S.LAYOUT_AFTER[wrong]), 1, 2)
    assert bad.shape == ref.shape
    assert float(jnp.max(jnp.abs(bad - ref))) > 100 * bound


@pytest.mark.parametrize("method", ["separable", "bank"])
def test_scale_major_lifting_equals_nhwcs(key, method):
    k1, k2 = jax.random.split(key)
    x = jax.random.normal(k1, (2, 10, 7, 2))
    w = jax.random.normal(k2, (2, 5, 6))
    basis = S.hermite_gaussian_basis(7, (0.8, 1.3))
    ref = S.scale_lifting_conv2d(x, w, basis, precision="highest", method=method)
    out = S.scale_lifting_conv2d(x, w, basis, precision="highest", method=method,
                                 layout="SHWNC")
    assert out.shape == (2, 7, 10, 2, 5)  # [S, W, H, N, O]
    assert_close(S.to_nhwcs(out, "SWHNC"), ref, ops=2 * (14 + 12 + 6 + 98))


def test_layouts_round_trip_and_bad_layouts_are_named():
    y = jnp.arange(2 * 3 * 4 * 5 * 6.0).reshape(2, 3, 4, 5, 6)
    assert S.to_layout(y, "SHWNC").shape == (6, 3, 4, 2, 5)
    assert S.to_layout(y, "SWHNC").shape == (6, 4, 3, 2, 5)
    assert S.to_layout(y, "SWHNC")[1, 2, 0, 1, 3] == y[1, 0, 2, 3, 1]
    for layout in S.LAYOUTS:
        np.testing.assert_array_equal(S.to_nhwcs(S.to_layout(y, layout), layout), y)
    basis = jnp.asarray(S.hermite_gaussian_basis(3, (1.0, 2.0)))
    with pytest.raises(ValueError, match=r"layout must be one of .* got 'NCHWS'"):
        S.scale_conv2d(jnp.zeros((1, 4, 4, 1, 2)), jnp.zeros((1, 1, 1, 6)), basis,
                       layout="NCHWS")
    with pytest.raises(ValueError, match=r"lifting conv must be 'NHWCS' or 'SHWNC'.*'SWHNC'"):
        S.scale_lifting_conv2d(jnp.zeros((1, 4, 4, 1)), jnp.zeros((1, 1, 6)), basis,
                               layout="SWHNC")
    # scale-major: the scale axis is the first
    with pytest.raises(ValueError, match="basis has 2 scales but the input has 1"):
        S.scale_conv2d(jnp.zeros((1, 4, 4, 1, 2)), jnp.zeros((1, 1, 1, 6)), basis,
                       layout="SHWNC")


def test_scale_layers_take_a_layout_and_keep_their_parameters(key):
    x = jax.random.normal(key, (3, 6, 5, 1))
    lift = layers.ScaleLiftingConv(3, num_scales=2, kernel_size=3)
    major = layers.ScaleLiftingConv(3, num_scales=2, kernel_size=3, layout="SHWNC")
    params = lift.init(key, x)
    assert jax.tree.map(jnp.shape, major.init(key, x)) == jax.tree.map(jnp.shape, params)
    params = jax.tree.map(lambda p: p + 0.5, params)  # a nonzero bias
    y, ym = lift.apply(params, x), major.apply(params, x)
    assert ym.shape == (2, 5, 6, 3, 3)  # [S, W, H, N, O]
    assert_close(S.to_nhwcs(ym, "SWHNC"), y, ops=2 * (6 + 3 + 6 + 1))
    conv = layers.ScaleConv(4, num_scales=2, kernel_size=3, layout="SWHNC")
    cparams = conv.init(key, ym)
    assert cparams["params"]["weights"].shape == (3, 1, 4, 6)
    assert conv.apply(cparams, ym).shape == (2, 6, 5, 3, 4)  # [S, H, W, N, O]
    with pytest.raises(ValueError, match=r"input must be \[2, W, H, N, C\] \(layout SWHNC\)"):
        conv.init(key, y)  # an NHWCS map given to a scale-major layer
    with pytest.raises(ValueError, match=r"layout must be one of .* got 'NHWSC'"):
        layers.ScaleConv(4, num_scales=2, kernel_size=3, layout="NHWSC").init(key, y)
