"""Experiment 6: analytic rows by hand, the effective field inside the analytic one."""

import jax
import numpy as np
import pytest

from cnn_jax.experiments import receptive_fields as rf
from tests.experiments.quick import run_quick


def test_analytic_rows_by_hand():
    rows = {(r["stack"], r["depth"]): (r["rf"], r["jump"]) for r in rf.analytic_table(3)}
    assert [rows["3x3 conv", d] for d in (1, 2, 3)] == [(3, 1), (5, 1), (7, 1)]
    # conv3 -> 3, pool2 -> 4 (jump 2); conv3 -> 8, pool -> 10 (jump 4); conv3 -> 18, pool -> 22
    assert [rows["3x3 conv + 2x2 pool", d] for d in (1, 2, 3)] == [(4, 2), (10, 4), (22, 8)]
    assert [rows["3x3 conv, stride 2", d] for d in (1, 2, 3)] == [(3, 2), (7, 4), (15, 8)]
    assert [rows["3x3 conv, dilation 2^(i-1)", d] for d in (1, 2, 3)] == [(3, 1), (7, 1),
                                                                          (15, 1)]


def test_effective_field_lies_inside_the_analytic_one():
    model = rf._stack(3, 4)
    x = np.random.default_rng(0).normal(size=(2, 15, 15, 1)).astype(np.float32)
    params = jax.jit(model.init)(jax.random.key(0), x[:1])["params"]
    erf = rf.effective_field(model, params, x, "conv_3")
    inside = np.zeros_like(erf, bool)
    inside[7 - 3: 7 + 4, 7 - 3: 7 + 4] = True  # 7x7 around the centre (7, 7)
    assert erf[inside].sum() > 0 and np.all(erf[~inside] == 0)


@pytest.mark.parametrize("size", [15, 16, 28])
def test_centre_crop_holds_the_whole_field_of_maps_of_any_size(size):
    """The figure's crop (analytic radius about each map's own centre) keeps all the gradient,
    for the 64x64 init maps and the 28x28 test-image maps alike; one pixel less loses some."""
    model = rf._stack(2, 3)
    x = np.random.default_rng(1).normal(size=(2, size, size, 1)).astype(np.float32)
    params = jax.jit(model.init)(jax.random.key(1), x[:1])["params"]
    erf = rf.effective_field(model, params, x, "conv_2")  # analytic field 5x5: radius 2
    crop = rf.centre_crop(erf, 2)
    assert crop.shape == (5, 5) and np.count_nonzero(crop) == np.count_nonzero(erf) > 0
    assert np.count_nonzero(rf.centre_crop(erf, 1)) < np.count_nonzero(erf)


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="--size=10"):
        rf.Settings(size=10, max_depth=8)


def test_quick_variant(tmp_path):
    record, _ = run_quick("receptive_fields", tmp_path)
    n = record["numbers"]
    assert n["analytic_rf_at_max_depth"] == 7
    assert 1 <= n["erf_width_init_at_max_depth"] <= 7
    assert 1 <= n["erf_width_after_training"] <= 5 and 0.05 <= n["test_accuracy"] <= 1
