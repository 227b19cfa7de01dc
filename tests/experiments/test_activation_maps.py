"""Experiment 10: the flip identity, Sobel similarity, and the quick variant."""

import numpy as np
import pytest
from scipy import signal

from cnn_jax import ops
from cnn_jax.experiments import activation_maps as am
from tests.experiments.quick import run_quick
from tests.numerics import assert_close


def test_flip_identity_against_scipy():
    x = np.random.default_rng(0).random((9, 7)).astype(np.float32)
    maps = am.flip_identity(x, am.EMBOSS)
    # float32 sums of 9 products on each side (scipy also sums in float32), on sums of
    # |terms| up to the correlation of x >= 0 with |EMBOSS| (tests/numerics.py)
    scale = float(signal.correlate2d(x, np.abs(am.EMBOSS), "same").max())
    assert_close(maps["convolution"], signal.convolve2d(x, am.EMBOSS, "same"), ops=2 * 9,
                 scale=scale)
    assert_close(maps["correlation"], signal.correlate2d(x, am.EMBOSS, "same"), ops=2 * 9,
                 scale=scale)
    assert_close(maps["convolution"], maps["correlation_flipped"], ops=2 * 9, scale=scale)
    assert np.abs(maps["convolution"] - maps["correlation"]).max() > 0.5  # negative control


def test_sobel_similarity():
    filters = np.stack([3 * ops.SOBEL_X + 1, -ops.SOBEL_Y, np.ones((3, 3))], -1)
    sim = am.sobel_similarity(filters)
    # Integer arithmetic up to the two norms: the products with the other Sobel filter and
    # the constant filter's are exactly 0; the cosines 1 are off by the rounding of two roots
    # (the Sobel filters' in float32), their product and the division.
    one = dict(ops=4, scale=1.0, dtype=np.float32)
    assert_close(sim[0], [1, 0], **one)  # offset removed, scale ignored
    assert_close(sim[1], [0, 1], **one)  # sign ignored
    np.testing.assert_array_equal(sim[2], [0, 0])  # constant: no edge (0 / 1e-12)


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="--epochs=0"):
        am.Settings(epochs=0)


def test_quick_variant(tmp_path):
    record, _ = run_quick("activation_maps", tmp_path)
    n = record["numbers"]
    assert 0.05 <= n["test_accuracy"] <= 1 and n["train_examples"] == 256
    assert n["conv_minus_flipped_corr_max"] < 1e-5 < 0.5 < n["conv_minus_corr_max"]
    assert 0 <= n["best_cos_sobel_x"] <= 1
