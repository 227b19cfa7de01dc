"""Layers: parameter shapes, the pure op they call, and the conv tie of the local layer."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_jax import layers, ops
from cnn_jax.ops import blur as blur_ops
from cnn_jax.ops import group as group_ops
from tests.numerics import assert_close


def init_apply(module, x, key):
    params = module.init(key, x)
    return params, module.apply(params, x)


def test_public_api():
    for name in layers.__all__:
        assert hasattr(layers, name), name


def test_locally_connected_shapes_and_tie_to_conv(key):
    x = jax.random.normal(key, (2, 8, 7, 3))
    lc = layers.LocallyConnected2D(4, kernel_size=3, padding="same", stride=2)
    params, y = init_apply(lc, x, key)
    assert y.shape == (2, 4, 4, 4)
    assert params["params"]["kernel"].shape == (4, 4, 3, 3, 3, 4)
    assert params["params"]["bias"].shape == (4, 4, 4)
    conv = layers.Conv2D(4, 3, stride=2, padding="same", impl="xla")
    cparams = conv.init(key, x)
    w, b = cparams["params"]["kernel"], jax.random.normal(key, (4,))
    tied = {"params": {"kernel": jnp.broadcast_to(w, (4, 4, *w.shape)),
                       "bias": jnp.broadcast_to(b, (4, 4, 4))}}
    # two float32 sums of 3*3*3 products, plus the bias
    assert_close(lc.apply(tied, x), conv.apply({"params": {"kernel": w, "bias": b}}, x),
                 ops=2 * 28)


@pytest.mark.parametrize("group", ["p4", "p4m"])
def test_group_layers(key, group):
    n = group_ops.group_order(group)
    x = jax.random.normal(key, (2, 7, 7, 3))
    lift = layers.LiftingConv(5, group=group)
    lp, y = init_apply(lift, x, key)
    assert y.shape == (2, 7, 7, 5, n) and lp["params"]["kernel"].shape == (3, 3, 3, 5)
    assert lp["params"]["bias"].shape == (5, 1)  # one bias per filter, shared over the group
    assert_close(y, group_ops.lifting_conv2d(x, lp["params"]["kernel"], group),
                 ops=2 * 28)  # two sums of 3*3*3 products, plus the bias
    gconv = layers.GroupConv(4, group=group, stride=2, impl="xla")
    gp, z = init_apply(gconv, y, key)
    assert z.shape == (2, 4, 4, 4, n) and gp["params"]["kernel"].shape == (3, 3, 5, n, 4)
    fast = layers.GroupConv(4, group=group, stride=2, impl="matmul").apply(gp, y)
    assert_close(fast, z, ops=2 * (3 * 3 * 5 * n + 1))  # two sums of 3*3*5*n products + bias
    pooled = layers.GroupPool("mean").apply({}, z)
    assert_close(pooled, z.mean(-1), ops=2 * (n + 1))  # n-term sum and a scaling, twice
    with pytest.raises(ValueError, match="input must be"):
        gconv.apply(gp, x)
    with pytest.raises(ValueError, match="square"):
        layers.LiftingConv(2, kernel_size=(3, 5)).init(key, x)


def test_scale_layers(key):
    x = jax.random.normal(key, (2, 12, 12, 2))
    lift = layers.ScaleLiftingConv(4, num_scales=3, kernel_size=7)
    lp, y = init_apply(lift, x, key)
    assert y.shape == (2, 12, 12, 4, 3) and lp["params"]["weights"].shape == (2, 4, 6)
    conv = layers.ScaleConv(3, num_scales=3, kernel_size=7, scale_span=2)
    cp, z = init_apply(conv, y, key)
    assert z.shape == (2, 12, 12, 3, 3) and cp["params"]["weights"].shape == (4, 2, 3, 6)
    assert 0.1 < float(jnp.std(z)) < 10  # initialisation keeps activations O(1)
    with pytest.raises(ValueError, match="input must be"):
        layers.ScaleConv(3, num_scales=4, kernel_size=7).init(key, y)


@pytest.mark.parametrize("height,width", [(8, 8), (9, 9), (7, 10)])
def test_blur_layers(key, height, width):
    x = jax.random.normal(key, (2, height, width, 3))
    blur = layers.BlurPool().apply({}, x)
    np.testing.assert_array_equal(blur, blur_ops.blur_pool2d(x, padding="reflect"))
    assert blur.shape == (2, -(-height // 2), -(-width // 2), 3)  # ceil, like a strided conv
    for padding in ("reflect", "circular"):
        got = layers.MaxBlurPool(padding=padding).apply({}, x)
        np.testing.assert_array_equal(got, blur_ops.max_blur_pool2d(x, 2, padding=padding))
        assert got.shape == ops.max_pool2d(x, 2).shape == (2, height // 2, width // 2, 3)
    np.testing.assert_array_equal(layers.MaxBlurPool().apply({}, x),
                                  blur_ops.max_blur_pool2d(x, 2, padding="reflect"))
