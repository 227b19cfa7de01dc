"""The checker itself: metrics, masks, assertions, actions and sweeps."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_jax import equivariance as E
from cnn_jax import transforms as T
from tests.numerics import assert_close, interpolation_ops


def test_equivariance_test_returns_both_sides():
    calls = []
    f = lambda x: calls.append("f") or 2 * x
    g_in = lambda x: calls.append("g_in") or x + 1
    g_out = lambda y: calls.append("g_out") or y - 1
    a, b = E.equivariance_test(f, 3.0, g_in, g_out)
    assert (a, b) == (8.0, 5.0)
    assert calls == ["g_in", "f", "f", "g_out"]


def test_relative_error_matches_numpy(key):
    a, b = jax.random.normal(key, (2, 2, 5, 5, 3))
    # float64 norms of the float32 difference; ours: the difference, two float32 sums of
    # (at most) n = 150 squares (no cancellation: relative bound n eps), two roots, a division
    d64, b64 = np.asarray(a - b, np.float64), np.asarray(b, np.float64)
    ops = b.size + 5
    assert_close(E.relative_error(a, b), np.linalg.norm(d64) / np.linalg.norm(b64), ops=ops)
    mask = E.central_mask(5, 5, border=1)
    m = mask[None, :, :, None]
    ref = np.linalg.norm(d64 * m) / np.linalg.norm(b64 * m)
    assert_close(E.relative_error(a, b, mask), ref, ops=ops)
    assert float(E.relative_error(b, b)) == 0.0
    assert float(E.relative_error(jnp.zeros(3), jnp.zeros(3))) == 0.0
    assert float(E.relative_error(jnp.ones(3), jnp.zeros(3))) == np.inf


def test_central_mask():
    np.testing.assert_array_equal(E.central_mask(4, 5, border=1),
                                  np.pad(np.ones((2, 3), bool), 1))
    disk = E.central_mask(7, 7, radius=2.0)
    assert disk[3, 3] and disk[1, 3] and disk[3, 5] and not disk[1, 1]
    assert disk.sum() == 13  # lattice points with i^2 + j^2 <= 4
    np.testing.assert_array_equal(disk, np.rot90(disk))  # rotation-symmetric
    even = E.central_mask(6, 6, radius=1.0)  # centre (2.5, 2.5): the four middle pixels
    assert even.sum() == 4 and even[2:4, 2:4].all()
    for kwargs in ({}, {"radius": 1.0, "border": 1}, {"border": 3}, {"radius": -1.0}):
        with pytest.raises(ValueError):
            E.central_mask(6, 6, **kwargs)


def test_assert_equivariant_passes_and_fails():
    b = jnp.ones((1, 4, 4, 1))
    assert E.assert_equivariant(b * (1 + 1e-7), b) < 1e-5
    with pytest.raises(AssertionError, match="relative error 0.1"):
        E.assert_equivariant(b * 1.1, b, what="layer")
    inner = E.central_mask(4, 4, border=1)
    edge_only = b.at[:, 0].set(5.0)
    E.assert_equivariant(edge_only, b, mask=inner)
    with pytest.raises(ValueError, match="mask"):
        E.assert_equivariant(edge_only, b, mask=inner[:3])


def test_stage_actions(key):
    y = jax.random.normal(key, (1, 8, 8, 2, 4))
    np.testing.assert_array_equal(E.stage_action("shift", 4, y.shape, (16, 16))(y),
                                  T.shift(y, 2, 2))
    # half a pixel at this stage: the same subpixel_shift call, bit for bit
    np.testing.assert_array_equal(E.stage_action("shift", 1, y.shape, (16, 16))(y),
                                  T.subpixel_shift(y, 0.5, 0.5, mode="circular"))
    np.testing.assert_array_equal(E.stage_action("rotate", 270.0, y.shape, (8, 8), group="p4")(y),
                                  T.p4_rotate90(y, 3))
    y8 = jnp.concatenate([y, -y], axis=-1)
    np.testing.assert_array_equal(E.stage_action("rotate", 90.0, y8.shape, (8, 8),
                                                 group="p4m")(y8), T.group_act(y8, 1, "p4m"))
    # zooms by 2.0 and by float32(sqrt 2) ** 2: factors an ulp apart, two resamplings
    assert_close(
        E.stage_action("scale", 2.0, y.shape, (8, 8), group="scale", scale_ratio=2 ** 0.5)(y),
        T.scale_group(y, 2 ** 0.5, 2), ops=2 * interpolation_ops(8), scale=np.abs(y).max())
    logits = jnp.ones((1, 3))
    assert E.stage_action("rotate", 45.0, logits.shape, (8, 8))(logits) is logits
    with pytest.raises(ValueError, match="kind"):
        E.stage_action("shear", 1.0, y.shape, (8, 8))
    with pytest.raises(ValueError, match="scale_ratio"):
        E.stage_action("scale", 2.0, y.shape, (8, 8), group="scale")


def test_sweep_identity_magnitudes_are_zero_and_curves_grow(key):
    x = jax.random.normal(key, (1, 12, 12, 1))
    f = lambda a: (jnp.sum(a, axis=(1, 2)), {"map": a * a})
    shifts = E.sweep(f, x, "shift", [0, 1, 3])
    assert set(shifts) == {"map", "logits"}
    # pointwise maps commute with integer (circular) shifts exactly: rolls and squares
    np.testing.assert_array_equal(shifts["map"], 0.0)
    # a sum is shift invariant up to the order of its 144 additions, on each side; relative
    # to |sum x| the bound grows by sum|x| / |sum x|
    cancellation = float(jnp.abs(x).sum() / jnp.abs(x.sum()))
    assert_close(shifts["logits"], 0.0, ops=2 * x.size, scale=cancellation, dtype=np.float32)
    # squaring commutes with exact quarter turns but not with bilinear interpolation
    angles = E.sweep(lambda a: a * a, x, "rotate", [0.0, 90.0, 45.0])
    assert angles["output"][0] == 0.0 and angles["output"][1] == 0.0
    assert angles["output"][2] > 0.1


def test_random_parameters_match_init_shapes(key):
    from cnn_jax import layers

    module = layers.LiftingConv(4, group="p4m")
    params = E.random_parameters(module, (1, 6, 6, 2), seed=3)
    reference = module.init(key, jnp.zeros((1, 6, 6, 2)))
    assert jax.tree.map(jnp.shape, params) == jax.tree.map(jnp.shape, reference)
    np.testing.assert_array_equal(params["params"]["kernel"],
                                  E.random_parameters(module, (1, 6, 6, 2), 3)["params"]["kernel"])
    assert 0.5 < float(jnp.std(params["params"]["kernel"])) * np.sqrt(3 * 3 * 2) < 2
    np.testing.assert_array_equal(params["params"]["bias"], 0.0)


def test_sweep_leaves_out_scales_whose_reach_leaves_the_ladder():
    """A scale_span=2 conv reads scale s + 1 too, which past the ladder is zero on one side
    only: the sweep keeps just the scales where both sides stay on the ladder."""
    from cnn_jax import models
    from cnn_jax.equivariance_report import smooth_images

    model = models.get("sesn", features=(4, 4), scale_span=2, conv_impl="xla")
    assert model.scale_reach() == {"lift": 0, "sconv_2": 1}
    x = smooth_images((1, 32, 32, 1), sigma=2.0, seed=0)
    params = E.random_parameters(model, x.shape, 0)
    f = jax.jit(lambda a: model.apply(params, a))
    ratio = 2**0.5
    sweep = lambda reach: E.sweep(f, x, "scale", [ratio, 1 / ratio], group="scale",
                                  scale_ratio=ratio, scale_reach=reach)
    kept, everything = sweep(model.scale_reach()), sweep(0)
    # by hand, 3 scales, reach 1: zoom in compares scale 1 only, zoom out scale 0 only
    mask = E.central_mask(32, 32, radius=8)
    fx = f(x)[1]["sconv_2"]
    for t, (steps, s) in enumerate([(1, 1), (-1, 0)]):
        got = f(T.scale(x, ratio**steps))[1]["sconv_2"][..., s]
        expected = T.scale_group(fx, ratio, steps)[..., s]
        # The same arrays (the same calls on the same input), reduced along other code
        # paths: per side two float32 sums of n squares (no cancellation: relative n u),
        # the squares, two roots and a division (tests/numerics.py)
        n = int(np.asarray(mask).sum()) * got.shape[0] * got.shape[3]
        assert_close(kept["sconv_2"][t], E.relative_error(got, expected, mask), ops=n + 5)
    assert kept["sconv_2"].max() < 0.1 < 0.3 < everything["sconv_2"].min()  # control
    np.testing.assert_array_equal(kept["lift"], everything["lift"])  # lift reads one scale
    assert np.isnan(sweep({"sconv_2": 2})["sconv_2"]).all()  # nothing left to compare
    with pytest.raises(ValueError, match="scale_reach"):
        sweep(-1)


def test_the_suite_pins_highest_precision(key):
    """The autouse fixture in conftest.py: contractions left to JAX run at HIGHEST here."""
    from cnn_jax import models

    model = models.get("cnn", features=(2,), dense_units=(4,), num_classes=3, conv_impl="xla")
    x = jnp.ones((1, 8, 8, 1))
    hlo = jax.jit(model.apply).lower(model.init(key, x), x).as_text().splitlines()
    contractions = [line for line in hlo if "stablehlo.convolution" in line
                    or "stablehlo.dot_general" in line]
    assert len(contractions) == 3  # the conv and the two dense layers
    assert all(line.count("HIGHEST") == 2 and "DEFAULT" not in line for line in contractions)
