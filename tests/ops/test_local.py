"""Locally connected op against a per-position numpy loop; tied weights give conv2d."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_jax import ops
from cnn_jax.ops.local import locally_connected2d, locally_connected_output_size
from tests.numerics import assert_close


@pytest.mark.parametrize("padding,stride", [("valid", 1), ("same", 2), ("circular", 1),
                                            ("full", (1, 2))])
def test_matches_per_position_loop(key, variant, padding, stride):
    k1, k2 = jax.random.split(key)
    x = np.asarray(jax.random.normal(k1, (2, 6, 5, 3)))
    oh, ow = locally_connected_output_size((6, 5), (3, 2), padding, stride)
    kernel = np.asarray(jax.random.normal(k2, (oh, ow, 3, 2, 3, 4)))
    got = variant(lambda a, k: locally_connected2d(a, k, padding=padding, stride=stride))(
        x, kernel)
    pads = ops.padding_amounts((6, 5), (3, 2), padding, (1, 1))
    xp = np.pad(x, ((0, 0), *pads, (0, 0)), mode="wrap" if padding == "circular" else "constant")
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    ref = np.zeros((2, oh, ow, 4))
    for i, j in itertools.product(range(oh), range(ow)):
        patch = xp[:, i * sh: i * sh + 3, j * sw: j * sw + 2]  # [N, KH, KW, C]
        ref[:, i, j] = np.einsum("nmpc,mpco->no", patch, kernel[i, j])
    # both sides float32 sums of 3*2*3 = 18 products (numpy's einsum runs in float32 here)
    assert_close(got, ref, ops=2 * 18)


@pytest.mark.parametrize("padding", ["valid", "same", "circular"])
def test_tied_weights_give_conv2d(key, padding):
    k1, k2 = jax.random.split(key)
    x = jax.random.normal(k1, (2, 7, 7, 3))
    w = jax.random.normal(k2, (3, 3, 3, 5))
    oh, ow = locally_connected_output_size((7, 7), (3, 3), padding, 2)
    tied = jnp.broadcast_to(w, (oh, ow, *w.shape))
    # two float32 sums of 3*3*3 = 27 products
    assert_close(locally_connected2d(x, tied, padding=padding, stride=2),
                 ops.conv2d(x, w, padding=padding, stride=2, impl="xla", precision="highest"),
                 ops=2 * 27)


def test_bad_arguments_raise():
    x = jnp.zeros((1, 5, 5, 2))
    with pytest.raises(ValueError, match="kernel has"):
        locally_connected2d(x, jnp.zeros((5, 5, 3, 3, 2, 1)))
    with pytest.raises(ValueError, match="input channels"):
        locally_connected2d(x, jnp.zeros((3, 3, 3, 3, 1, 1)))
    with pytest.raises(ValueError, match="6-D"):
        locally_connected2d(x, jnp.zeros((3, 3, 2, 1)))
