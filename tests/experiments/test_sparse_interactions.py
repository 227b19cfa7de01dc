"""Experiment 4: counts from built layers against hand-computed closed forms."""

import pytest

from cnn_jax.experiments import sparse_interactions as si
from tests.experiments.quick import run_quick


def test_closed_form_by_hand():
    # H=5, W=4, C=2, F=3, K=3: O = 3 * 2 * 3 = 18 outputs.
    got = si.closed_form(5, 4, 2, 3, 3)
    assert got["dense"] == {"outputs": 18, "params": 5 * 4 * 2 * 18 + 18, "connections": 720}
    assert got["local"] == {"outputs": 18, "params": 18 * 9 * 2 + 18, "connections": 324}
    assert got["conv"] == {"outputs": 18, "params": 9 * 2 * 3 + 3, "connections": 324}


@pytest.mark.parametrize("kind", si.LAYERS)
@pytest.mark.parametrize("h, w, c, f, k", [(5, 4, 2, 3, 3), (7, 9, 3, 2, 5), (6, 6, 1, 1, 1)])
def test_built_layers_match_closed_form(kind, h, w, c, f, k):
    assert si.built_counts(kind, h, w, c, f, k) == si.closed_form(h, w, c, f, k)[kind]


def test_bad_sizes_are_named():
    with pytest.raises(ValueError, match="--sizes=8,4"):
        si.Settings(sizes=(8, 4))
    with pytest.raises(ValueError, match="--filters=0"):
        si.Settings(filters=0)


def test_quick_variant(tmp_path):
    record, _ = run_quick("sparse_interactions", tmp_path)
    n = record["numbers"]
    assert n["conv_params"] == 3 * 3 * 2 * 3 + 3 and n["dense_over_conv_params"] > 10
