"""Receptive fields grow with depth: the analytic formula against gradient supports."""

import jax
import jax.numpy as jnp
import pytest

from cnn_jax import models, ops, receptive_field


def conv_stack(key, depth, stride=1, pool=None):
    """depth x (3x3 'valid' conv [+ 2x2 "max" or "avg" pool]); returns f and the layer list."""
    keys = jax.random.split(key, depth)
    kernels = [jax.random.normal(k, (3, 3, 1, 1)) for k in keys]
    layers = []
    for _ in range(depth):
        layers.append((3, stride))
        if pool:
            layers.append((2, 2))
    pool_fn = {"max": ops.max_pool2d, "avg": ops.avg_pool2d}.get(pool)

    def f(x):
        for k in kernels:
            x = jnp.tanh(ops.conv2d(x, k, stride=stride))
            if pool_fn is not None:
                x = pool_fn(x, 2)
        return x

    return f, layers


@pytest.mark.parametrize("depth, stride, pool", [(1, 1, None), (3, 1, None), (5, 1, None),
                                                 (2, 2, None), (2, 1, "avg")])
def test_gradient_support_matches_the_analytic_receptive_field(key, depth, stride, pool):
    """Random kernels, tanh and an average pool pass gradient to every pixel they read."""
    f, layers = conv_stack(key, depth, stride, pool)
    x = jax.random.normal(jax.random.fold_in(key, 1), (1, 33, 33, 1))
    rf, _ = receptive_field.analytic(layers)[-1]
    assert receptive_field.support(receptive_field.gradient_map(f, x)) == (rf, rf)


@pytest.mark.parametrize("seed", range(3))
def test_max_pool_routes_the_gradient_to_one_unit_per_window(key, seed):
    """A max-pool unit's gradient is that of the one unit it picks, so its support is that
    unit's. conv -> pool: exactly the conv's 3 (not the analytic 4). conv -> pool -> conv ->
    pool: the last pool adds nothing; its unit sees one conv_2 unit, whose 3 pool_1 inputs
    per axis (2 px apart) each pick one of 2 conv_1 units of 3 px: the support spans
    4 + (b - a) + 3 with a, b in {0, 1} -- between 6 and the conv_2 analytic field, 8."""
    x = jax.random.normal(jax.random.fold_in(key, seed), (1, 33, 33, 1))
    f1, layers1 = conv_stack(jax.random.fold_in(key, 10 + seed), 1, 1, "max")
    assert receptive_field.analytic(layers1)[-1][0] == 4
    assert receptive_field.support(receptive_field.gradient_map(f1, x)) == (3, 3)
    f2, layers2 = conv_stack(jax.random.fold_in(key, 20 + seed), 2, 1, "max")
    rf_before_last_pool = receptive_field.analytic(layers2[:-1])[-1][0]
    assert rf_before_last_pool == 8
    for size in receptive_field.support(receptive_field.gradient_map(f2, x)):
        assert 6 <= size <= rf_before_last_pool


def test_receptive_field_grows_linearly_with_depth_for_stride_one():
    sizes = [r for r, _ in receptive_field.analytic([(3, 1)] * 6)]
    assert sizes == [3, 5, 7, 9, 11, 13]


def test_dense_layers_see_the_whole_image_and_conv_layers_a_window(key):
    x = jax.random.normal(key, (1, 16, 16, 1))
    mlp = models.get("mlp", num_layers=1, units=32, num_classes=4)
    params = mlp.init(key, x)
    dense = lambda a: mlp.apply(params, a)[1]["dense_1"][:, None, None, :]
    assert receptive_field.support(receptive_field.gradient_map(dense, x)) == (16, 16)
    cnn = models.get("cnn", features=(4,), pool="none", activation="tanh", num_classes=4)
    cparams = cnn.init(key, x)
    conv = lambda a: cnn.apply(cparams, a)[1]["conv_1"]
    assert receptive_field.support(receptive_field.gradient_map(conv, x)) == (3, 3)


def test_bad_input():
    with pytest.raises(ValueError, match="must be >= 1"):
        receptive_field.analytic([(3, 0)])
    with pytest.raises(ValueError, match=r"x must be \[1, H, W, C\]"):
        receptive_field.gradient_map(lambda a: a, jnp.ones((2, 4, 4, 1)))


def test_centred_mass_width_by_hand():
    m = jnp.zeros((7, 7)).at[3, 3].set(2.0).at[1, 3].set(1.0).at[3, 6].set(1.0)
    # mass 4: the centre holds 1/2, radius 2 adds (1, 3) -> 3/4, radius 3 adds (3, 6) -> 1.
    assert [receptive_field.centred_mass_width(m, f) for f in (0.5, 0.75, 0.76, 1.0)] == [
        1, 5, 7, 7]
    assert receptive_field.centred_mass_width(jnp.zeros((3, 3))) == 0
    with pytest.raises(ValueError, match="fraction"):
        receptive_field.centred_mass_width(m, 0.0)
