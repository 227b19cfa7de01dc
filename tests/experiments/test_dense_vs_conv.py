"""Experiment 3: the quick variant runs, its numbers are sane, and bad settings are named."""

import pytest

from cnn_jax.experiments import dense_vs_conv
from tests.experiments.quick import run_quick


def test_quick_variant(tmp_path):
    record, _ = run_quick("dense_vs_conv", tmp_path)
    n = record["numbers"]
    # 784*32 + 32 + 32*10 + 10; 4*9+4 + 9*4*8+8 + (5*5*8)*16+16 + 16*10+10
    assert n["mlp_params"] == 25450 and n["cnn_params"] == 3722
    assert 0.05 <= n["mlp_test_accuracy"] <= 1 and 0.05 <= n["cnn_test_accuracy"] <= 1


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="--templates=0"):
        dense_vs_conv.Settings(templates=0)
