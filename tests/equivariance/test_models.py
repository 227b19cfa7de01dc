"""The equivariant and locally connected models follow the model contract."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import cnn_jax.models.gcnn  # noqa: F401  (registers p4cnn, p4mcnn)
import cnn_jax.models.lcn  # noqa: F401
import cnn_jax.models.sesn  # noqa: F401
from cnn_jax import models

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
    params = jax.jit(model.init)(key, x)
    logits, features = model.apply(params, x, train=False)  # eager: jit would sort the keys
    assert logits.shape == (2, 5)
    assert list(features) == STAGES[name]  # stages in network order
    np.testing.assert_array_equal(features["logits"], logits)
    grads = jax.grad(lambda p: jnp.sum(model.apply(p, x)[0] ** 2))(params)
    assert all(np.isfinite(g).all() for g in jax.tree.leaves(grads))


@pytest.mark.parametrize("name", ["p4mcnn", "sesn"])
def test_conv_impls_agree(name, key):
    x = jax.random.normal(key, (2, 12, 12, 1))
    fast = models.get(name, conv_impl="matmul", **SMALL[name])
    params = fast.init(key, x)
    native = models.get(name, conv_impl="xla", **SMALL[name])
    np.testing.assert_allclose(fast.apply(params, x)[0], native.apply(params, x)[0],
                               rtol=1e-4, atol=1e-4)


def test_group_feature_shapes(key):
    x = jnp.zeros((1, 12, 12, 1))
    model = models.get("p4mcnn", features=(2, 3), num_classes=4)
    _, feats = model.apply(model.init(key, x), x)
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
