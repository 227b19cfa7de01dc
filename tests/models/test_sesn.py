"""SESN's scale-major path (the default) against its [N, H, W, C, S] path, which runs the
layers on the documented layout: the same parameters, values, features and gradients."""

import functools

import jax
import jax.numpy as jnp
import pytest

from cnn_jax import models
from tests.numerics import assert_close


@pytest.mark.parametrize("kwargs", [
    dict(features=(3, 4, 5), kernel_size=5, pool="max"),
    dict(features=(3, 4, 5, 2), kernel_size=5, pool="avg", scale_span=2, scale_pool="mean"),
    dict(features=(3,), kernel_size=5),
], ids=["max-pools", "avg-pools-span2-mean", "lift-only"])
def test_scale_major_sesn_equals_the_nhwcs_one(key, kwargs):
    k1, k2, k3 = jax.random.split(key, 3)
    x = jax.random.normal(k1, (2, 13, 11, 2))  # H != W, odd: the pools crop a remainder
    cot = jax.random.normal(k3, (2, 10))
    fast = models.get("sesn", **kwargs)
    plain = models.get("sesn", scale_major=False, **kwargs)
    params = jax.jit(plain.init)(k2, x)
    assert (jax.tree.map(jnp.shape, jax.eval_shape(fast.init, k2, x))
            == jax.tree.map(jnp.shape, params))
    params = jax.tree.map(lambda p: p + 0.1, params)  # nonzero biases

    @functools.partial(jax.jit, static_argnums=0)  # eagerly, 10 s a model
    def outputs_and_grads(model, p):
        (logits, feats), vjp = jax.vjp(lambda q: model.apply(q, x), p)
        (grads,) = vjp((cot, jax.tree.map(jnp.zeros_like, feats)))
        return logits, feats, grads

    logits, feats, grads = outputs_and_grads(fast, params)
    ref_logits, ref_feats, ref_grads = outputs_and_grads(plain, params)
    assert feats.keys() == ref_feats.keys()
    # per side: a stage's banded passes (2 x 5 taps), its mixing (<= 6 x 4 x 2 products),
    # the pools and the head, for at most 4 stages
    ops = 2 * 4 * (10 + 48 + 4) + 2 * 10
    for name in feats:
        assert feats[name].shape == ref_feats[name].shape, name
        assert_close(feats[name], ref_feats[name], ops=ops, err_msg=name)
    assert_close(logits, ref_logits, ops=ops)
    for (path, g), r in zip(jax.tree_util.tree_leaves_with_path(grads),
                            jax.tree.leaves(ref_grads)):
        assert_close(g, r, ops=4 * ops, err_msg=jax.tree_util.keystr(path))
