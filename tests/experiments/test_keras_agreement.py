"""Experiment 2: Welch's t against scipy, the quick variant, named bad settings."""

import csv
import math

import numpy as np
import pytest
from scipy import stats

from cnn_jax.experiments import keras_agreement
from tests.experiments.quick import run_quick


def test_welch_test_matches_scipy():
    rng = np.random.default_rng(0)
    for n_a, n_b in ((3, 3), (3, 4), (5, 2)):
        a, b = rng.normal(0.88, 0.01, n_a), rng.normal(0.87, 0.02, n_b)
        expected = stats.ttest_ind(a, b, equal_var=False)
        got = keras_agreement.welch_test(a, b)
        assert got.t == pytest.approx(expected.statistic, rel=1e-12)
        assert got.df == pytest.approx(expected.df, rel=1e-12)
        # the p-value comes from float32 betainc: a few float32 ulps of error
        assert got.p == pytest.approx(expected.pvalue, rel=1e-5)
    assert all(math.isnan(v) for v in keras_agreement.welch_test([0.9], [0.8, 0.7]))
    # no spread: equal means agree (p 1); different ones differ surely (p 0)
    assert keras_agreement.welch_test([0.5, 0.5], [0.5, 0.5]).p == 1.0
    assert keras_agreement.welch_test([0.6, 0.6], [0.5, 0.5])[::2] == (math.inf, 0.0)


def test_quick_variant(tmp_path):
    record, workdir = run_quick("keras_agreement", tmp_path)
    n = record["numbers"]
    assert n["seeds"] == 2 and n["depths"] == [1] and n["train_examples"] == 512
    assert 0 <= n["max_abs_diff_valid_accuracy"] <= 1
    rows = open(f"{workdir}/members.csv").read().splitlines()
    assert len(rows) == 1 + 2 * 2  # header + side x seed
    # every member trained 1..2 epochs and reached better than chance on 10 classes
    for r in csv.DictReader(open(f"{workdir}/members.csv")):
        assert 1 <= float(r["epochs_run"]) <= 2 and float(r["valid_accuracy"]) > 0.2


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="--depths=-1"):
        keras_agreement.Settings(depths=(-1,))
    with pytest.raises(ValueError, match="--patience=-1"):
        keras_agreement.Settings(patience=-1)
