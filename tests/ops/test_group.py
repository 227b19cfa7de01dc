"""p4 / p4m algebra and group convolution against per-element references."""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_jax import layers, models, ops
from cnn_jax.ops import group as G
from tests.numerics import assert_close


def plane_map(m, r):
    """numpy reference for T_g = R^r F^m on a 2-D array."""
    def apply(a):
        return np.rot90(a[:, ::-1] if m else a, r)
    return apply


def test_cayley_table_matches_composition_of_plane_maps():
    a = np.arange(25.0).reshape(5, 5)  # no symmetry: distinct elements give distinct images
    images = [plane_map(*divmod(g, 4))(a) for g in range(8)]
    assert len({im.tobytes() for im in images}) == 8
    table = G.cayley_table("p4m")
    for u, v in itertools.product(range(8), repeat=2):
        composed = plane_map(*divmod(u, 4))(plane_map(*divmod(v, 4))(a))
        np.testing.assert_array_equal(composed, images[table[u, v]])


@pytest.mark.parametrize("group", ["p4", "p4m"])
def test_group_axioms(group):
    table = G.cayley_table(group)
    n = len(table)
    assert all(sorted(row) == list(range(n)) for row in table)  # Latin square
    np.testing.assert_array_equal(table[0], np.arange(n))  # identity
    inv = G.inverse(group)
    np.testing.assert_array_equal(table[np.arange(n), inv], 0)
    for a, b, c in itertools.product(range(n), repeat=3):
        assert table[table[a, b], c] == table[a, table[b, c]]


def test_p4_is_cyclic_and_p4m_not_abelian():
    t4 = G.cayley_table("p4")
    np.testing.assert_array_equal(t4, (np.arange(4)[:, None] + np.arange(4)) % 4)
    t8 = G.cayley_table("p4m")
    assert (t8 != t8.T).any()


def test_transform_grid_matches_numpy_and_traced(key):
    x = np.asarray(jax.random.normal(key, (2, 5, 5, 3)))
    for g in range(8):
        ref = np.stack([np.stack([plane_map(*divmod(g, 4))(x[n, :, :, c]) for c in range(3)], -1)
                        for n in range(2)])
        np.testing.assert_array_equal(G.transform_grid(x, g, axes=(1, 2)), ref)
        np.testing.assert_array_equal(
            jax.jit(lambda a, e: G.transform_grid(a, e, axes=(1, 2)))(x, g), ref)


@pytest.mark.parametrize("group", ["p4", "p4m"])
def test_lifting_conv_is_one_correlation_per_transformed_filter(key, group, variant):
    k1, k2 = jax.random.split(key)
    x = jax.random.normal(k1, (2, 7, 7, 3))
    kernel = jax.random.normal(k2, (3, 3, 3, 2))
    got = variant(lambda a, k: G.lifting_conv2d(a, k, group))(x, kernel)
    n = G.group_order(group)
    assert got.shape == (2, 7, 7, 2, n)
    for g in range(n):
        rotated = np.stack([np.stack([plane_map(*divmod(g, 4))(np.asarray(kernel[:, :, c, o]))
                                      for c in range(3)], -1) for o in range(2)], -1)
        ref = ops.conv2d(x, jnp.asarray(rotated), padding="same", impl="xla",
                         precision="highest")
        assert_close(got[..., g], ref, ops=2 * 27)  # two sums of 3*3*3 products


def element_matrices(group):
    """[G, 2, 2] integer matrices M_g acting on centred (row, col) offsets, g = 4 m + r.

    From the documented action on arrays alone: F reverses the column axis, (F A)(u, v) =
    A(u, -v); R is a quarter turn as numpy's rot90, (R A)(u, v) = A(v, -u); T_g = R^r F^m
    and (T_g A)(x) = A(M_g^-1 x), so M_g = M_R^r M_F^m.
    """
    m_r = np.array([[0, -1], [1, 0]])  # inverse of (u, v) -> (v, -u)
    m_f = np.array([[1, 0], [0, -1]])
    n = G.group_order(group)
    return np.stack([np.linalg.matrix_power(m_r, g % 4) @ np.linalg.matrix_power(m_f, g // 4)
                     for g in range(n)])


def group_correlation_reference(f, psi, group, padding):
    """Cohen & Welling (2016), eq. for G-correlation on a G-feature map, taken literally:

    [f * psi](t, M) = sum_{y in Z^2} sum_{N in H} sum_c f_c(y, N) psi_c(M^-1 (y - t), M^-1 N),

    the group elements being roto-(reflection-)translations (t, M) with M an integer matrix,
    so that (t, M)^-1 (y, N) = (M^-1 (y - t), M^-1 N). Pixel coordinates are (row, col); a
    filter index e sits at offset e - (K - 1) / 2 from the filter's centre; output position i
    has its centre at t = i + (K - 1) / 2 ("valid") or t = i ("same", odd K; zero outside).

    Args:
      f: [H, W, C, G]; psi: [K, K, C, G, O] (numpy).

    Returns:
      [H', W', O, G].
    """
    mats = element_matrices(group)
    n = len(mats)
    index = {m.tobytes(): g for g, m in enumerate(mats)}
    h, w, c, _ = f.shape
    k, o = psi.shape[0], psi.shape[-1]
    centre = (k - 1) / 2
    lead = centre if padding == "valid" else 0.0
    oh, ow = (h - k + 1, w - k + 1) if padding == "valid" else (h, w)
    inverses = [np.round(np.linalg.inv(m)).astype(int) for m in mats]
    # src[g][N]: the index of M_g^-1 M_N
    src = [[index[(m_inv @ m).tobytes()] for m in mats] for m_inv in inverses]
    out = np.zeros((oh, ow, o, n))
    for i, j, g in itertools.product(range(oh), range(ow), range(n)):
        t = np.array([i + lead, j + lead])
        for y in itertools.product(range(h), range(w)):
            e = inverses[g] @ (np.array(y) - t) + centre  # filter index of M^-1 (y - t)
            if not ((0 <= e) & (e <= k - 1)).all():
                continue
            a, b = (int(round(v)) for v in e)
            # sum over N and c of f_c(y, N) psi_c(M^-1 (y - t), M^-1 N)
            out[i, j, :, g] += np.einsum("cn,cno->o", f[y[0], y[1]], psi[a, b][:, src[g]])
    return out


@pytest.mark.parametrize("group", ["p4", "p4m"])
@pytest.mark.parametrize("size, padding", [(3, "valid"), (3, "same"), (2, "valid")])
def test_group_conv_matches_definition(key, group, size, padding):
    """Against the paper's formula over group elements as matrices, on a 5x5 input."""
    n = G.group_order(group)
    k1, k2 = jax.random.split(key)
    y = np.asarray(jax.random.normal(k1, (1, 5, 5, 2, n)))
    kernel = np.asarray(jax.random.normal(k2, (size, size, 2, n, 3)))
    got = G.group_conv2d(jnp.asarray(y), jnp.asarray(kernel), group, padding=padding,
                         impl="xla", precision="highest")
    ref = group_correlation_reference(y[0], kernel, group, padding)
    # float32 sums of 2 * n * K^2 products of unit normals against a float64 reference
    assert_close(got[0], ref, ops=2 * 2 * n * size * size)


@pytest.mark.parametrize("group", ["p4", "p4m"])
@pytest.mark.parametrize("size", [2, 3])
def test_expanded_banks_are_the_transformed_copies(group, size):
    """The gathered banks equal G copies made with transform_grid / act, one per element
    (their definition), in value and in the gradient (the gather's scatter-add)."""
    n = G.group_order(group)
    rng = np.random.default_rng(size)  # numpy draws: no random-number program to compile
    lift = jnp.asarray(rng.standard_normal((size, size, 2, 3)), jnp.float32)
    kernel = jnp.asarray(rng.standard_normal((size, size, 2, n, 3)), jnp.float32)

    def lift_copies(k):
        bank = jnp.stack([G.transform_grid(k, g, axes=(0, 1)) for g in range(n)], axis=-1)
        return bank.reshape(size, size, 2, 3 * n)

    def group_copies(k):
        bank = jnp.stack([G.act(k, g, group, spatial_axes=(0, 1), group_axis=3)
                          for g in range(n)], axis=-1)
        return bank.reshape(size, size, 2 * n, 3 * n)

    for fast, slow, k in ((G.expand_lifting_kernel, lift_copies, lift),
                          (G.expand_group_kernel, group_copies, kernel)):
        fast = functools.partial(fast, group=group)
        np.testing.assert_array_equal(fast(k), slow(k))  # a permutation: exact
        r = jnp.asarray(rng.standard_normal(slow(k).shape), jnp.float32)
        grads = [jax.jit(jax.grad(lambda k, f=f, r=r: jnp.sum(f(k) * r)))(k)
                 for f in (fast, slow)]
        # each kernel entry sums the G entries of r it was copied to, in another order
        assert_close(*grads, ops=2 * n)


def test_group_reference_is_sensitive_to_the_element_convention(key):
    """Negative control: the reference with R turned the other way disagrees (p4)."""
    k1, k2 = jax.random.split(key)
    y = np.asarray(jax.random.normal(k1, (1, 5, 5, 1, 4)))
    kernel = np.asarray(jax.random.normal(k2, (3, 3, 1, 4, 1)))
    got = np.asarray(G.group_conv2d(jnp.asarray(y), jnp.asarray(kernel), "p4", padding="valid",
                                    impl="xla", precision="highest"))
    mirrored = group_correlation_reference(y[0, :, ::-1], kernel[:, ::-1], "p4", "valid")
    assert np.abs(got[0] - mirrored[:, ::-1]).max() > 0.1


@pytest.mark.parametrize("group", ["p4", "p4m"])
def test_impls_agree_in_value_and_gradient(key, group):
    """Every output, and the gradient (a vjp) for every kernel and input entry."""
    n = G.group_order(group)
    k1, k2, k3 = jax.random.split(key, 3)
    y = jax.random.normal(k1, (2, 6, 6, 2, n))
    kernel = jax.random.normal(k2, (3, 3, 2, n, 3))
    cotangent = jax.random.normal(k3, (2, 6, 6, 3, n))

    @functools.partial(jax.jit, static_argnums=0)
    def value_and_vjp(impl, y, kernel, cotangent):
        out, pullback = jax.vjp(lambda a, k: G.group_conv2d(a, k, group, impl=impl,
                                                            precision="highest"), y, kernel)
        return (out, *pullback(cotangent))

    got, want = value_and_vjp("matmul", y, kernel, cotangent), value_and_vjp("xla", y, kernel,
                                                                             cotangent)
    # The same linear maps on absolute values give each sum's sum of |terms| (no cancellation):
    # the scale of its rounding error for every summation order (tests/numerics.py).
    magnitude = value_and_vjp("xla", abs(y), abs(kernel), abs(cotangent))
    # Terms per sum: an output, 3*3 positions * 2 channels * n elements; a kernel entry's
    # gradient, 2*6*6 positions * the n expanded filters it appears in; an input entry's,
    # 3*3 positions * 3 filters * n elements. Both sides added up.
    terms = {"value": 3 * 3 * 2 * n, "input gradient": 3 * 3 * 3 * n,
             "kernel gradient": 2 * 6 * 6 * n}
    for name, a, b, m in zip(("value", "input gradient", "kernel gradient"), got, want,
                             magnitude, strict=True):
        assert_close(a, b, ops=2 * terms[name], scale=float(m.max()), err_msg=name)


def test_keeps_centre():
    assert [n for n in range(4, 12) if G.keeps_centre(n, 2, 2)] == [4, 6, 8, 10]
    assert [n for n in range(4, 12) if G.keeps_centre(n, 3, 2)] == [5, 7, 9, 11]
    assert all(G.keeps_centre(n, 3, 1) for n in range(3, 9))  # stride 1 always
    assert [n for n in range(5, 12) if G.keeps_centre(n, 3, 3)] == [6, 9]
    with pytest.raises(ValueError, match="stride"):
        G.keeps_centre(8, 2, 0)
    with pytest.raises(ValueError, match="window"):
        G.keeps_centre(2, 3, 1)


@pytest.mark.parametrize("group", ["p4", "p4m"])
def test_group_pool(key, group):
    n = G.group_order(group)
    y = np.asarray(jax.random.normal(key, (2, 4, 4, 3, n)))
    maximum, total = y[..., 0], y[..., 0].astype(np.float64)
    for g in range(1, n):  # running max and sum over the group axis
        maximum, total = np.maximum(maximum, y[..., g]), total + y[..., g]
    np.testing.assert_array_equal(G.group_pool(y), maximum)  # max: exact, no arithmetic
    # mean: a float32 sum of n values (n - 1 roundings) and a scaling (exact for n = 4, 8),
    # on sums of |terms| up to max sum_g |y_g| (tests/numerics.py); the reference is float64
    scale = float(np.abs(y).sum(-1).max()) / n
    assert_close(G.group_pool(y, "mean"), total / n, ops=n, scale=scale)
    # invariance: acting on the group map only transforms the pooled grid
    for u in range(n):
        moved = G.act(y, u, group)
        # max: a permutation of the values, then a selection
        np.testing.assert_array_equal(G.group_pool(moved), G.transform_grid(G.group_pool(y), u,
                                                                            axes=(1, 2)))
        # mean: the same n values summed in another order; both sides added up
        assert_close(G.group_pool(moved, "mean"),
                     G.transform_grid(G.group_pool(y, "mean"), u, axes=(1, 2)), ops=2 * n,
                     scale=scale, err_msg=f"element {u}")


@pytest.mark.parametrize("call,match", [
    (lambda: G.group_order("p6"), "group must be"),
    (lambda: G.transform_grid(jnp.zeros((1, 3, 3, 1)), 8), "element"),
    (lambda: G.expand_lifting_kernel(jnp.zeros((3, 5, 1, 1)), "p4"), "square"),
    (lambda: G.expand_group_kernel(jnp.zeros((3, 3, 1, 8, 1)), "p4"), r"\[K, K, C, 4, O\]"),
    (lambda: G.group_conv2d(jnp.zeros((1, 3, 3, 1, 8)), jnp.zeros((3, 3, 1, 4, 1)), "p4"),
     r"\[N, H, W, C, 4\]"),
    (lambda: G.group_pool(jnp.zeros((1, 2)), "min"), "reduce"),
])
def test_bad_arguments_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("padding", ["same", "circular"])
def test_even_kernels_are_refused_where_they_break_equivariance(key, padding):
    x = jnp.zeros((1, 6, 6, 1))
    match = rf"kernel_size must be odd with padding='{padding}'.*got 2"
    with pytest.raises(ValueError, match=match):
        G.lifting_conv2d(x, jnp.zeros((2, 2, 1, 1)), "p4", padding=padding)
    with pytest.raises(ValueError, match=match):
        G.group_conv2d(jnp.zeros((1, 6, 6, 1, 4)), jnp.zeros((2, 2, 1, 4, 1)), "p4",
                       padding=padding)
    with pytest.raises(ValueError, match=match):
        layers.LiftingConv(2, kernel_size=2, padding=padding).init(key, x)
    with pytest.raises(ValueError, match=match):
        layers.GroupConv(2, kernel_size=2, padding=padding).init(key, jnp.zeros((1, 6, 6, 1, 4)))
    with pytest.raises(ValueError, match=match):
        models.get("p4cnn", kernel_size=2, padding=padding).init(key, jnp.zeros((1, 8, 8, 1)))


@pytest.mark.parametrize("group", ["p4", "p4m"])
def test_even_kernels_stay_exact_with_valid_padding(key, group):
    """Valid padding reads symmetric windows, so an even K is allowed and exact; the same
    filters with 'same' padding (computed without the check) are far off: the reason for it."""
    k1, k2, k3 = jax.random.split(key, 3)
    x = jax.random.normal(k1, (1, 6, 6, 1))
    lift = jax.random.normal(k2, (2, 2, 1, 3))
    gkernel = jax.random.normal(k3, (2, 2, 3, G.group_order(group), 2))

    def f(a, padding="valid", lift=lift, gkernel=gkernel):
        if padding == "valid":
            return G.group_conv2d(G.lifting_conv2d(a, lift, group, padding="valid"),
                                  gkernel, group, padding="valid")
        out = ops.conv2d(a, G.expand_lifting_kernel(lift, group), padding=padding)
        return out.reshape(*out.shape[:3], 3, G.group_order(group))

    # Rotations permute exactly; only the summation order differs: per side 2*2*1 products
    # in the lifting conv, then 2*2*3*n in the group conv, on sums of |terms| at most the
    # network run on absolute values (tests/numerics.py). Both sides added up.
    ops_count = 2 * (2 * 2 + 2 * 2 * 3 * G.group_order(group))
    scale = float(f(abs(x), lift=abs(lift), gkernel=abs(gkernel)).max())
    for g in range(G.group_order(group)):
        got = f(G.transform_grid(x, g, axes=(1, 2)))
        expected = G.act(f(x), g, group)
        assert_close(got, expected, ops=ops_count, scale=scale, err_msg=f"element {g}")
    same = lambda a: f(a, "same")
    err = np.linalg.norm(same(G.transform_grid(x, 1, axes=(1, 2))) - G.act(same(x), 1, group))
    assert err / np.linalg.norm(same(x)) > 0.3
