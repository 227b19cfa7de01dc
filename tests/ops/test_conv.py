"""Convolution and cross-correlation against the lecture, scipy/numpy and their theorems."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.signal
from hypothesis import assume, given
from hypothesis import strategies as st

from cnn_jax import ops
from tests.numerics import assert_close
from tests.test_precision import contraction_precisions

LECTURE_X = [[3, 3, 2, 1, 0], [0, 0, 1, 3, 1], [3, 1, 2, 2, 3], [2, 0, 0, 2, 2], [2, 0, 0, 0, 1]]
LECTURE_K = [[0, 1, 2], [2, 2, 0], [0, 1, 2]]
LECTURE_OUT = [[12, 12, 17], [10, 17, 19], [9, 6, 14]]

FUNCS_2D = {
    "correlate": (ops.correlate2d, ops.correlate2d_reference),
    "convolve": (ops.convolve2d, ops.convolve2d_reference),
}
FUNCS_1D = {
    "correlate": (ops.correlate1d, ops.correlate1d_reference),
    "convolve": (ops.convolve1d, ops.convolve1d_reference),
}


def dilate(kernel, dilation):
    """Inserts dilation - 1 zeros between kernel taps (numpy, any rank)."""
    dilation = (dilation,) * kernel.ndim if isinstance(dilation, int) else dilation
    out = np.zeros([d * (k - 1) + 1 for k, d in zip(kernel.shape, dilation)], kernel.dtype)
    out[tuple(slice(None, None, d) for d in dilation)] = kernel
    return out


def scipy_2d(kind, x, k, padding, stride, dilation):
    """The scipy.signal answer for our padding/stride/dilation conventions."""
    kd = dilate(k, dilation)
    if padding == "circular":
        assert kind == "convolve" or all(s % 2 for s in kd.shape)
        fn = scipy.signal.convolve2d if kind == "convolve" else scipy.signal.correlate2d
        out = fn(x, kd, mode="same", boundary="wrap")
    elif kind == "convolve":
        out = scipy.signal.convolve2d(x, kd, mode=padding)
    elif all(s % 2 for s in kd.shape):
        out = scipy.signal.correlate2d(x, kd, mode=padding)
    else:  # correlate2d takes the other half-pixel for even kernels; correlate is ours.
        out = scipy.signal.correlate(x, kd, mode=padding)
    return out[:: stride[0], :: stride[1]]


def sum_of_abs_terms(x, k):
    """A bound on every output's sum of |x_i k_j| terms: max|x| * sum|k| (scale of the sums)."""
    return float(np.abs(x).max() * np.abs(k).sum())


@st.composite
def conv_case(draw, ndim):
    x_shape = tuple(draw(st.integers(1, 9)) for _ in range(ndim))
    k_shape = tuple(draw(st.integers(1, 4)) for _ in range(ndim))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(ndim))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(ndim))
    padding = draw(st.sampled_from(ops.PADDINGS))
    if padding == "valid":
        assume(all(d * (k - 1) < n for n, k, d in zip(x_shape, k_shape, dilation)))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(np.float32)
    k = rng.standard_normal(k_shape).astype(np.float32)
    return x, k, padding, stride, dilation


def test_lecture_worked_example_is_exact(variant):
    out = variant(ops.correlate2d)(jnp.array(LECTURE_X), jnp.array(LECTURE_K))
    np.testing.assert_array_equal(np.asarray(out), LECTURE_OUT)
    ref = ops.correlate2d_reference(jnp.array(LECTURE_X), jnp.array(LECTURE_K))
    np.testing.assert_array_equal(np.asarray(ref), LECTURE_OUT)


@pytest.mark.parametrize("kind", ["correlate", "convolve"])
@given(case=conv_case(2))
def test_2d_matches_scipy_and_definition(kind, case):
    x, k, padding, stride, dilation = case
    if kind == "correlate" and padding == "circular":
        assume(all((d * (n - 1) + 1) % 2 for n, d in zip(k.shape, dilation)))
    fast, reference = FUNCS_2D[kind]
    kw = dict(padding=padding, stride=stride, dilation=dilation)
    expected = scipy_2d(kind, x.astype(np.float64), k.astype(np.float64), padding, stride, dilation)
    got_fast = jax.jit(lambda a, b: fast(a, b, **kw))(x, k)
    got_ref = reference(x, k, **kw)
    # a float32 sum of k.size products against float64
    scale = sum_of_abs_terms(x, k)
    assert_close(got_fast, expected, ops=k.size, scale=scale)
    assert_close(got_ref, expected, ops=k.size, scale=scale)


@given(case=conv_case(2))
def test_even_kernel_circular_correlation_is_wrapped_same(case):
    x, k, padding, stride, dilation = case
    pads = [(d * (n - 1) - d * (n - 1) // 2, d * (n - 1) // 2) for n, d in zip(k.shape, dilation)]
    xp = np.pad(x.astype(np.float64), pads, mode="wrap")
    expected = scipy.signal.correlate(xp, dilate(k.astype(np.float64), dilation), mode="valid")
    got = ops.correlate2d(x, k, padding="circular", stride=stride, dilation=dilation)
    assert_close(got, expected[:: stride[0], :: stride[1]], ops=k.size,
                 scale=sum_of_abs_terms(x, k))


@pytest.mark.parametrize("kind", ["correlate", "convolve"])
@given(case=conv_case(1))
def test_1d_matches_numpy_and_definition(kind, case):
    x, k, padding, (stride,), (dilation,) = case
    fast, reference = FUNCS_1D[kind]
    kd = dilate(k.astype(np.float64), dilation)
    x64 = x.astype(np.float64)
    if padding == "circular":
        p = len(kd) - 1
        xp = np.pad(x64, (p - p // 2, p // 2), mode="wrap")
        expected = np.correlate(xp, kd if kind == "correlate" else kd[::-1], mode="valid")
    else:
        # numpy's 'same' has the longer operand's length; scipy's keeps x's.
        lib = np if len(kd) <= len(x64) else scipy.signal
        expected = (lib.correlate if kind == "correlate" else lib.convolve)(x64, kd, mode=padding)
    expected = expected[::stride]
    kw = dict(padding=padding, stride=stride, dilation=dilation)
    scale = sum_of_abs_terms(x, k)
    assert_close(jax.jit(lambda a, b: fast(a, b, **kw))(x, k), expected, ops=k.size, scale=scale)
    assert_close(reference(x, k, **kw), expected, ops=k.size, scale=scale)


@given(case=conv_case(2))
def test_convolution_is_correlation_with_flipped_kernel(case):
    x, k, padding, stride, dilation = case
    kw = dict(padding=padding, stride=stride, dilation=dilation)
    # both sides float32 sums of k.size products, possibly in different orders
    scale = sum_of_abs_terms(x, k)
    assert_close(ops.convolve2d(x, k, **kw), ops.correlate2d(x, np.flip(k), **kw),
                 ops=2 * k.size, scale=scale)
    assert_close(ops.convolve2d_reference(x, k, **kw),
                 ops.correlate2d_reference(x, np.flip(k), **kw), ops=2 * k.size, scale=scale)


def test_full_convolution_commutes_and_correlation_does_not(variant):
    a = jnp.array([[1.0, 2.0, 0.0], [0.0, 1.0, 3.0]])
    b = jnp.array([[2.0, -1.0], [0.0, 1.0], [4.0, 1.0]])
    conv = variant(lambda p, q: ops.convolve2d(p, q, padding="full"))
    corr = variant(lambda p, q: ops.correlate2d(p, q, padding="full"))
    # small integers: every product and partial sum is exact in float32
    np.testing.assert_array_equal(conv(a, b), conv(b, a))
    assert not np.array_equal(corr(a, b), corr(b, a))
    # what correlation satisfies instead: corr(b, a) is corr(a, b) rotated by 180 degrees.
    np.testing.assert_array_equal(corr(b, a), np.flip(corr(a, b)))


@pytest.mark.parametrize("shift", [(0, 1), (2, -3), (-4, 5), (7, 7)])
def test_circular_correlation_is_exactly_shift_equivariant(shift, variant):
    rng = np.random.default_rng(0)
    x = rng.integers(-5, 6, size=(8, 10)).astype(np.float32)
    k = rng.integers(-3, 4, size=(3, 4)).astype(np.float32)
    f = variant(lambda a: ops.correlate2d(a, k, padding="circular"))
    np.testing.assert_array_equal(f(np.roll(x, shift, (0, 1))), np.roll(f(x), shift, (0, 1)))


def test_zero_padding_breaks_shift_equivariance_at_the_border():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((8, 8)).astype(np.float32)
    k = rng.standard_normal((3, 3)).astype(np.float32)
    f = lambda a: np.asarray(ops.correlate2d(a, k, padding="same"))
    shifted, expected = f(np.roll(x, 1, 1)), np.roll(f(x), 1, 1)
    bound = assert_close(shifted[:, 2:-1], expected[:, 2:-1], ops=2 * k.size,
                         scale=sum_of_abs_terms(x, k))
    assert np.abs(shifted[:, :2] - expected[:, :2]).max() > 100 * bound


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: ops.correlate2d(jnp.ones(5), jnp.ones((3, 3))), r"x must be 2-D.*\(5,\)"),
        (lambda: ops.correlate2d(jnp.ones((5, 5)), jnp.ones(3)), r"kernel must be 2-D.*\(3,\)"),
        (lambda: ops.correlate1d(jnp.ones((4, 4)), jnp.ones(3)), r"x must be 1-D.*\(4, 4\)"),
        (lambda: ops.correlate2d(jnp.ones((3, 3)), jnp.ones((4, 4))), r"larger than the input"),
        (lambda: ops.convolve1d(jnp.ones(5), jnp.ones(3), dilation=3), r"larger than the input"),
        (lambda: ops.correlate2d(jnp.ones((5, 5)), jnp.ones((3, 3)), padding="reflect"),
         r"padding must be one of .*'reflect'"),
        (lambda: ops.correlate2d(jnp.ones((5, 5)), jnp.ones((3, 3)), stride=0),
         r"stride must be .* got 0"),
        (lambda: ops.correlate2d(jnp.ones((5, 5)), jnp.ones((3, 3)), dilation=(1, -2)),
         r"dilation must be .* got \(1, -2\)"),
        (lambda: ops.convolve1d(jnp.ones(5), jnp.ones(3), stride=1.5), r"stride must be .*1\.5"),
        (lambda: ops.conv2d(jnp.ones((1, 5, 5)), jnp.ones((3, 3, 1, 1))), r"x must be 4-D"),
        (lambda: ops.conv2d(jnp.ones((1, 5, 5, 2)), jnp.ones((3, 3, 3, 1))), r"channels 3 .* 2"),
        (lambda: ops.conv2d(jnp.ones((1, 5, 5, 1)), jnp.ones((3, 3, 1, 1)), impl="fft"),
         r"impl must be one of .*'fft'"),
    ],
)
def test_bad_input_raises_value_error_naming_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# Every 1-D and 2-D function, fast and reference, by name.
ALL_FUNCS = {f"{kind}{nd}d{ref}": (getattr(ops, f"{kind}{nd}d{ref}"), nd)
             for kind in ("correlate", "convolve") for nd in (1, 2) for ref in ("", "_reference")}


@pytest.mark.parametrize("name", sorted(ALL_FUNCS))
def test_defaults_are_valid_padding_unit_stride_and_dilation(name):
    f, nd = ALL_FUNCS[name]
    if nd == 1:
        # by hand: correlation x(i) - x(i + 2); convolution x(i + 2) - x(i) ('valid': 2 outputs,
        # stride 2 would keep 1, dilation 2 would not fit the 4 samples)
        x, k = jnp.array([1.0, 2.0, 4.0, 8.0]), jnp.array([1.0, 0.0, -1.0])
        expected = [-3.0, -6.0] if name.startswith("correlate") else [3.0, 6.0]
    else:
        x, k = jnp.array(LECTURE_X), jnp.array(LECTURE_K)
        expected = (LECTURE_OUT if name.startswith("correlate")
                    else scipy.signal.convolve2d(LECTURE_X, LECTURE_K, mode="valid"))
    # small integers: every product and sum is exact in float32
    np.testing.assert_array_equal(f(x, k), expected)


@pytest.mark.parametrize("name", sorted(ALL_FUNCS))
def test_wrong_rank_or_empty_input_names_the_argument(name):
    f, nd = ALL_FUNCS[name]
    layout = "[W]" if nd == 1 else "[H, W]"
    ones = lambda *shape: jnp.ones(shape)
    with pytest.raises(ValueError, match=re.escape(f"x must be {nd}-D {layout}, got shape "
                                                   "(2, 2, 2)")):
        f(ones(2, 2, 2), ones(*(1,) * nd))
    with pytest.raises(ValueError, match=re.escape(f"kernel must be {nd}-D {layout}, got "
                                                   "shape (1, 1, 1)")):
        f(ones(*(3,) * nd), ones(1, 1, 1))
    for x_shape, k_shape in (((0,) * nd, (1,) * nd), ((3,) * nd, (0,) * nd)):
        with pytest.raises(ValueError, match=re.escape(
                f"x and kernel must be non-empty, got {x_shape}, {k_shape}")):
            f(ones(*x_shape), ones(*k_shape), padding="full")


@pytest.mark.parametrize("arg, value, match", [
    ("stride", True, "stride must be a positive int or a sequence of 2 positive ints, got True"),
    ("stride", (1, 1, 1), r"stride must be .* got \(1, 1, 1\)"),
    ("dilation", (2, 1.0), r"dilation must be .* got \(2, 1\.0\)"),
    ("dilation", "2", r"dilation must be .* got '2'"),
])
def test_stride_and_dilation_must_be_positive_ints(arg, value, match):
    with pytest.raises(ValueError, match=match):
        ops.correlate2d(jnp.ones((5, 5)), jnp.ones((2, 2)), **{arg: value})


# ------------------------------------------------------------------ conv2d: many filters


@pytest.mark.parametrize("impl", ["xla", "matmul", "auto"])
@pytest.mark.parametrize(
    "padding, stride, dilation, kshape",
    [("valid", 1, 1, (3, 3)), ("same", 2, 1, (3, 3)), ("full", 1, 2, (2, 3)),
     ("circular", (2, 1), 1, (5, 3)), ("same", 1, (2, 1), (1, 1)), ("valid", 3, 1, (4, 2)),
     ("valid", 1, 1, (1, 2))],
)
def test_conv2d_is_a_sum_of_single_channel_correlations(impl, padding, stride, dilation, kshape,
                                                        variant):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 9, 8, 3)).astype(np.float32)
    k = rng.standard_normal((*kshape, 3, 4)).astype(np.float32)
    kw = dict(padding=padding, stride=stride, dilation=dilation)
    got = variant(lambda a, b: ops.conv2d(a, b, impl=impl, **kw))(x, k)
    expected = np.stack([
        np.stack([sum(np.asarray(ops.correlate2d_reference(x[n, ..., c], k[..., c, o], **kw))
                      for c in range(3)) for o in range(4)], -1)
        for n in range(2)
    ])
    # two float32 sums of KH*KW*C products each; scale: the same sum of |terms|
    scale = np.asarray(ops.conv2d(np.abs(x), np.abs(k), impl="xla", **kw)).max()
    assert_close(got, expected, ops=2 * k[..., 0].size, scale=scale)


@pytest.mark.parametrize("padding", ops.PADDINGS)
@pytest.mark.parametrize("stride, dilation", [(1, 1), (2, 1), (1, 2), ((2, 3), (1, 2))])
def test_conv2d_implementations_agree_in_value_and_gradient(padding, stride, dilation, key):
    assert_impls_agree((2, 11, 10, 3), (3, 3, 3, 5), padding, stride, dilation, key)


@pytest.mark.parametrize(
    "x_shape, k_shape, padding, stride, dilation",
    [((2, 9, 12, 2), (2, 4, 2, 3), "same", (2, 1), 1),
     ((1, 8, 7, 3), (4, 1, 3, 2), "full", 2, (1, 2)),
     ((2, 7, 8, 1), (2, 2, 1, 4), "valid", (1, 3), 2),
     ((1, 6, 5, 2), (1, 1, 2, 3), "circular", 2, 1),
     ((2, 10, 9, 2), (4, 3, 2, 2), "same", 3, 2)],
)
def test_conv2d_implementations_agree_for_even_kernels_and_odd_sizes(x_shape, k_shape, padding,
                                                                     stride, dilation, key):
    assert_impls_agree(x_shape, k_shape, padding, stride, dilation, key)


def assert_impls_agree(x_shape, k_shape, padding, stride, dilation, key):
    """matmul and auto against xla (lax.conv_general_dilated): values, dx and dk."""
    kx, kk, kg = jax.random.split(key, 3)
    x = jax.random.normal(kx, x_shape)
    k = jax.random.normal(kk, k_shape)
    kw = dict(padding=padding, stride=stride, dilation=dilation, precision="highest")
    y_xla = ops.conv2d(x, k, impl="xla", **kw)
    cot = jax.random.normal(kg, y_xla.shape)
    loss = lambda impl: lambda a, b: jnp.vdot(ops.conv2d(a, b, impl=impl, **kw), cot)
    g_xla = jax.jit(jax.grad(loss("xla"), argnums=(0, 1)))(x, k)
    # Bounds: each output (and each gradient entry) is a float32 sum of n products, computed
    # twice in different orders; the scale is the same sum over |terms| (all inputs made
    # non-negative). n: KH*KW*C for y, KH*KW*O for dx, the number of output pixels for dk.
    abs_in = (jnp.abs(x), jnp.abs(k))
    y_scale = jnp.max(ops.conv2d(*abs_in, impl="xla", **kw))
    abs_loss = lambda a, b: jnp.vdot(ops.conv2d(a, b, impl="xla", **kw), jnp.abs(cot))
    g_scales = [jnp.max(g) for g in jax.grad(abs_loss, argnums=(0, 1))(*abs_in)]
    kh, kwidth, c, o = k_shape
    g_terms = [kh * kwidth * o, y_xla.shape[0] * y_xla.shape[1] * y_xla.shape[2]]
    for impl in ("matmul", "auto"):
        y = jax.jit(lambda a, b, impl=impl: ops.conv2d(a, b, impl=impl, **kw))(x, k)
        assert_close(y, y_xla, ops=2 * kh * kwidth * c, scale=float(y_scale), err_msg=impl)
        grads = jax.jit(jax.grad(loss(impl), argnums=(0, 1)))(x, k)
        for a, b, n, s, name in zip(grads, g_xla, g_terms, g_scales, ("dx", "dk")):
            assert_close(a, b, ops=2 * n, scale=float(s), err_msg=f"{impl} {name}")


def test_auto_impl_follows_backend():
    expected = "mixed" if jax.default_backend() == "cpu" else "xla"
    assert ops.resolve_impl("auto") == expected
    assert ops.resolve_impl("xla") == "xla"


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="'mixed' is the CPU choice of auto")
@pytest.mark.parametrize("stride", [1, 2])
def test_auto_on_cpu_runs_xla_conv_for_values_and_a_gather_form_for_gradients(stride, key):
    x = jax.random.normal(key, (2, 8, 8, 3))
    k = jax.random.normal(key, (3, 3, 3, 4))
    conv = lambda a, b: ops.conv2d(a, b, impl="auto", stride=stride, padding="same")
    value = str(jax.make_jaxpr(conv)(x, k))
    grad = str(jax.make_jaxpr(jax.grad(lambda a, b: conv(a, b).sum(), argnums=(0, 1)))(x, k))
    assert "conv_general_dilated" in value and "dot_general" not in value
    # dk: one matmul of the patches; dx: a plain (forward, stride-1) conv of the output
    # gradient -- not XLA's transposed conv (lhs_dilation) nor a scatter-add of patches.
    assert grad.count("dot_general") == 2  # y and dk
    (conv_eqn,) = re.findall(r"conv_general_dilated\[[^\]]*\]", grad.replace("\n", " "))
    assert re.search(r"lhs_dilation=\(1, 1\)", conv_eqn)
    assert re.search(r"window_strides=\(1, 1\)", conv_eqn)


# ------------------------------------------------------------------ what reaches the kernels


def _precisions(jaxpr):
    """The set of precisions of every dot/conv in ``jaxpr``, one set per contraction."""
    return [set(p) if isinstance(p, tuple) else {p} for p in contraction_precisions(jaxpr)]


@pytest.mark.parametrize("impl", ["xla", "matmul", "auto"])
def test_conv2d_precision_reaches_every_contraction_of_value_and_gradient(impl, key):
    """On CPU every precision computes float32 (README), so only the program can show that
    the argument is passed on: forward, dx and dk, stride 2 (the spread gradient) and 1."""
    x, k = jax.random.normal(key, (1, 6, 6, 2)), jax.random.normal(key, (3, 3, 2, 3))
    for stride in (1, 2):
        for precision, want in ((jax.lax.Precision.HIGHEST, {jax.lax.Precision.HIGHEST}),
                                (None, {None})):
            def f(a, b, stride=stride, precision=precision):
                return ops.conv2d(a, b, impl=impl, stride=stride, padding="same",
                                  precision=precision).sum()

            for fn in (f, jax.grad(f, argnums=(0, 1))):
                found = _precisions(jax.make_jaxpr(fn)(x, k).jaxpr)
                assert found, "no contraction found"
                assert all(p == want for p in found), (impl, stride, found)


@pytest.mark.parametrize("name", sorted(ALL_FUNCS))
def test_single_map_functions_contract_at_highest_precision(name):
    f, nd = ALL_FUNCS[name]
    found = _precisions(jax.make_jaxpr(f)(jnp.ones((5,) * nd), jnp.ones((2,) * nd)).jaxpr)
    assert all(p == {jax.lax.Precision.HIGHEST} for p in found)
    assert bool(found) == (not name.endswith("_reference"))  # the references multiply-add


def test_conv2d_defaults_are_valid_unit_stride_and_dilation_and_auto(key):
    x, k = jax.random.normal(key, (2, 7, 6, 3)), jax.random.normal(key, (3, 2, 3, 4))
    want = jax.lax.conv_general_dilated(x, k, (1, 1), "VALID",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                        precision=jax.lax.Precision.HIGHEST)
    assert_close(ops.conv2d(x, k), want, ops=18, scale=float(jnp.abs(x).max() *
                                                            jnp.abs(k).max()))
    assert str(jax.make_jaxpr(ops.conv2d)(x, k)) == str(
        jax.make_jaxpr(lambda a, b: ops.conv2d(a, b, impl="auto"))(x, k))


def test_conv2d_wrong_ranks_and_channels_are_named():
    with pytest.raises(ValueError) as e:
        ops.conv2d(jnp.ones((5, 5, 1)), jnp.ones((3, 3, 1, 1)))
    assert str(e.value) == "x must be 4-D [N, H, W, C], got shape (5, 5, 1)"
    with pytest.raises(ValueError) as e:
        ops.conv2d(jnp.ones((1, 5, 5, 1)), jnp.ones((3, 3, 1)))
    assert str(e.value) == "kernel must be 4-D [KH, KW, C, O], got shape (3, 3, 1)"
    with pytest.raises(ValueError) as e:
        ops.conv2d(jnp.ones((1, 5, 5, 2)), jnp.ones((3, 3, 1, 4)))
    assert str(e.value) == "kernel input channels 1 do not match x channels 2"
    with pytest.raises(ValueError) as e:
        ops.conv2d(jnp.ones((1, 5, 5, 1)), jnp.ones((3, 3, 1, 1)), impl="mixed")
    assert str(e.value) == "impl must be one of ('auto', 'xla', 'matmul'), got 'mixed'"


def test_auto_is_xla_on_accelerators(monkeypatch):
    for backend, want in (("gpu", "xla"), ("tpu", "xla"), ("cpu", "mixed")):
        monkeypatch.setattr(jax, "default_backend", lambda b=backend: b)
        assert ops.resolve_impl("auto") == want
    assert ops.resolve_impl("matmul") == "matmul"


def test_integer_inputs_are_computed_in_float32():
    """The lecture's example in int32 gives float32 maps with the exact values."""
    x, k = jnp.array(LECTURE_X, jnp.int32), jnp.array(LECTURE_K, jnp.int32)
    for name, (f, nd) in ALL_FUNCS.items():
        if nd == 2:
            out = f(x, k)
            assert out.dtype == jnp.float32, name
            if name.startswith("correlate"):
                np.testing.assert_array_equal(out, LECTURE_OUT)


@pytest.mark.parametrize("stride", [1, 2])
def test_bfloat16_gradients_of_auto_match_xla(stride, key):
    """The gather-form gradient keeps bfloat16 (its spread of dy pads with a bfloat16 zero)."""
    x = jax.random.normal(key, (1, 6, 6, 2)).astype(jnp.bfloat16)
    k = jax.random.normal(jax.random.fold_in(key, 1), (3, 3, 2, 3)).astype(jnp.bfloat16)
    grads = {impl: jax.grad(lambda a, b: ops.conv2d(a, b, impl=impl, stride=stride,  # noqa: B023
                                                    padding="same").astype(jnp.float32).sum(),
                            argnums=(0, 1))(x, k) for impl in ("xla", "auto")}
    for a, b in zip(grads["auto"], grads["xla"]):
        assert a.dtype == b.dtype == jnp.bfloat16
        np.testing.assert_allclose(np.asarray(a, np.float32), np.asarray(b, np.float32),
                                   rtol=2e-2, atol=0.1)


@pytest.mark.parametrize("impl", ["xla", "matmul", "auto"])
def test_conv2d_circular_keeps_the_size_and_wraps(impl, key):
    x, k = jax.random.normal(key, (1, 5, 6, 2)), jax.random.normal(key, (3, 3, 2, 2))
    y = ops.conv2d(x, k, padding="circular", impl=impl)
    assert y.shape == (1, 5, 6, 2)
    want = jax.lax.conv_general_dilated(jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), "wrap"), k,
                                        (1, 1), "VALID", precision=jax.lax.Precision.HIGHEST,
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))
    assert_close(y, want, ops=18, scale=float(jnp.abs(x).max() * jnp.abs(k).max()))


@pytest.mark.parametrize("arg, value", [("stride", 0), ("dilation", (1, 0))])
def test_conv2d_stride_and_dilation_messages_name_them(arg, value):
    with pytest.raises(ValueError) as e:
        ops.conv2d(jnp.ones((1, 5, 5, 1)), jnp.ones((2, 2, 1, 1)), **{arg: value})
    assert str(e.value) == (f"{arg} must be a positive int or a sequence of 2 positive ints, "
                            f"got {value!r}")
