"""Experiment 10: the flip identity, Sobel similarity, and the quick variant."""

import numpy as np
import pytest
from scipy import signal

from cnn_jax import ops
from cnn_jax.experiments import activation_maps as am
from tests.experiments.quick import run_quick


def test_flip_identity_against_scipy():
    x = np.random.default_rng(0).random((9, 7)).astype(np.float32)
    maps = am.flip_identity(x, am.EMBOSS)
    # float32 sums of 9 products: agree with scipy's float64 to ~1e-6.
    np.testing.assert_allclose(maps["convolution"], signal.convolve2d(x, am.EMBOSS, "same"),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(maps["correlation"], signal.correlate2d(x, am.EMBOSS, "same"),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(maps["convolution"], maps["correlation_flipped"], atol=1e-5)
    assert np.abs(maps["convolution"] - maps["correlation"]).max() > 0.5  # negative control


def test_sobel_similarity():
    filters = np.stack([3 * ops.SOBEL_X + 1, -ops.SOBEL_Y, np.ones((3, 3))], -1)
    sim = am.sobel_similarity(filters)
    np.testing.assert_allclose(sim[0], [1, 0], atol=1e-6)  # offset removed, scale ignored
    np.testing.assert_allclose(sim[1], [0, 1], atol=1e-6)  # sign ignored
    np.testing.assert_allclose(sim[2], [0, 0], atol=1e-6)  # constant: no edge


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="--epochs=0"):
        am.Settings(epochs=0)


def test_quick_variant(tmp_path):
    record, _ = run_quick("activation_maps", tmp_path)
    n = record["numbers"]
    assert 0.05 <= n["test_accuracy"] <= 1 and n["train_examples"] == 256
    assert n["conv_minus_flipped_corr_max"] < 1e-5 < 0.5 < n["conv_minus_corr_max"]
    assert 0 <= n["best_cos_sobel_x"] <= 1
