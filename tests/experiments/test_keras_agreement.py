"""Experiment 2: Welch's t against scipy, the quick variant, named bad settings."""

import csv
import math

import numpy as np
import pytest
from scipy import stats

from cnn_jax.experiments import keras_agreement
from tests.experiments.quick import run_quick


def test_welch_t_matches_scipy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.88, 0.01, 3), rng.normal(0.87, 0.02, 4)
    expected = stats.ttest_ind(a, b, equal_var=False).statistic
    assert keras_agreement.welch_t(a, b) == pytest.approx(expected, rel=1e-12)
    assert math.isnan(keras_agreement.welch_t([0.9], [0.8, 0.7]))


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
