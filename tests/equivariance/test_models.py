"""The equivariant and locally connected models follow the model contract."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import cnn_jax.models.gcnn  # noqa: F401  (registers p4cnn, p4mcnn)
import cnn_jax.models.lcn  # noqa: F401
import cnn_jax.models.sesn  # noqa: F401
from cnn_jax import equivariance as E
from cnn_jax import models
from tests.numerics import assert_close

SMALL = {
    "lcn": dict(features=(3, 4), dense_units=(8,)),
    "p4cnn": dict(features=(2, 3)),
    "p4mcnn": dict(features=(2, 3)),
    "sesn": dict(features=(2, 3), kernel_size=5, pool="max"),
}
STAGES = {
    "lcn": ["local_1", "pool_1", "local_2", "pool_2", "dense_1", "logits"],
    "p4cnn": ["lift", "pool_1", "gconv_2", "group_pool", "gap", "logits"],
    "p4mcnn": ["lift", "pool_1", "gconv_2", "group_pool", "gap", "logits"],
    "sesn": ["lift", "pool_1", "sconv_2", "scale_pool", "gap", "logits"],
}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_contract(name, key):
    model = models.get(name, num_classes=5, **SMALL[name])
    x = jax.random.normal(key, (2, 12, 12, 1))
    order = []

    def forward(params, a):
        logits, features = model.apply(params, a, train=False)
        order[:] = list(features)  # recorded while tracing: jit returns dicts key-sorted
        loss = lambda p: jnp.sum(model.apply(p, a)[0] ** 2)
        return logits, features, jax.grad(loss)(params)

    params = jax.jit(model.init)(key, x)
    logits, features, grads = jax.jit(forward)(params, x)
    assert logits.shape == (2, 5)
    assert order == STAGES[name]  # stages in network order
    np.testing.assert_array_equal(features["logits"], logits)
    assert all(np.isfinite(g).all() for g in jax.tree.leaves(grads))
    assert any(np.abs(g).max() > 0 for g in jax.tree.leaves(grads))


@pytest.mark.parametrize("name", ["p4mcnn", "sesn"])
def test_conv_impls_agree(name, key):
    x = jax.random.normal(key, (2, 12, 12, 1))
    fast = models.get(name, conv_impl="matmul", **SMALL[name])
    params = E.random_parameters(fast, x.shape)
    native = models.get(name, conv_impl="xla", **SMALL[name])
    logits = [jax.jit(m.apply)(params, x)[0] for m in (fast, native)]
    # each side's chain of sums: the lifting conv, the second conv, the global average over
    # 6*6 pixels, the 3-unit head (p4m: 3*3*1 then 3*3*2*8 products; sesn: 5*5*1 taps of a
    # kernel from 6 basis functions, then 2 scales * 5*5*2)
    chain = {"p4mcnn": 9 + 144, "sesn": 25 + 6 + 100}[name] + 36 + 3
    assert_close(*logits, ops=2 * chain)


def test_group_feature_shapes(key):
    x = jnp.zeros((1, 12, 12, 1))
    model = models.get("p4mcnn", features=(2, 3), num_classes=4)
    _, feats = jax.eval_shape(model.apply, E.random_parameters(model, x.shape), x)
    assert feats["lift"].shape == (1, 12, 12, 2, 8)
    assert feats["gconv_2"].shape == (1, 6, 6, 3, 8)
    assert feats["group_pool"].shape == (1, 6, 6, 3)


@pytest.mark.parametrize("name,kwargs,match", [
    ("p4cnn", {"pool": "min"}, "pool"),
    ("p4cnn", {"features": ()}, "features"),
    ("sesn", {"pool": "sum"}, "pool"),
    ("lcn", {"pool": "l2"}, "pool"),
    ("p4cnn", {"activation": "swish7"}, "activation"),
])
def test_bad_hyper_parameters_raise(name, kwargs, match, key):
    with pytest.raises(ValueError, match=match):
        models.get(name, **kwargs).init(key, jnp.zeros((1, 8, 8, 1)))
