"""Experiment 5: the shift sweep against direct shifts, and the quick variant."""

import jax.numpy as jnp
import numpy as np
import pytest

from cnn_jax.experiments import parameter_sharing as ps
from tests.experiments.quick import run_quick


def test_shift_accuracy_detects_a_position_detector():
    # Class 1 iff the pixel at (2, 2) is lit: shifting any direction by >= 1 px loses it.
    images = np.zeros((4, 5, 5, 1), np.uint8)
    images[:, 2, 2] = 255
    labels = np.ones(4, np.int32)
    predict = lambda p, x: jnp.stack([0.5 - x[:, 2, 2, 0], x[:, 2, 2, 0] - 0.5], -1)
    np.testing.assert_allclose(ps.shift_accuracy(predict, None, images, labels, 2), [1, 0, 0])


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="--max_shift=0"):
        ps.Settings(max_shift=0)


def test_quick_variant(tmp_path):
    record, _ = run_quick("parameter_sharing", tmp_path)
    n = record["numbers"]
    # cnn: 4*9+4 + 8*36+8 + 200*16+16 + 170; lcn: (26*26)*(9*4+4) + (11*11)*(36*8+8) + same head
    assert n["cnn_params"] == 3722 and n["lcn_params"] == 26 * 26 * 40 + 121 * 296 + 3386
    assert 0.05 <= n["cnn_test_accuracy"] <= 1 and 0.05 <= n["lcn_test_accuracy"] <= 1
    assert -1 <= n["cnn_drop_at_max_shift"] <= 1
