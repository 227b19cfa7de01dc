"""Early stopping on scripted metric sequences, outcomes derived by hand from Keras 3's
documented algorithm (see the module docstring of cnn_jax.training.early_stopping)."""

import re

import pytest

from cnn_jax.config import EarlyStoppingConfig
from cnn_jax.training.early_stopping import EarlyStopping


def run(values, monitor="val_loss", **kw):
    """Feeds values epoch by epoch; returns (epochs run, stopped_epoch, best_epoch, kept)."""
    es = EarlyStopping(EarlyStoppingConfig(monitor=monitor, **kw))
    kept, epochs_run = None, 0
    for epoch, v in enumerate(values):
        epochs_run = epoch + 1
        if es.update(epoch, {monitor: v}):
            kept = epoch
        if es.stop_training:
            break
    return epochs_run, es.stopped_epoch, es.best_epoch, (kept if es.restores_weights else None)


def test_lecture_setting_patience_5_restores_best():
    # best at epoch 2 (0.5); epochs 3..7 do not improve -> wait reaches 5 at epoch 7: stop.
    vals = [1.0, 0.8, 0.5, 0.6, 0.55, 0.7, 0.51, 0.9, 0.1]
    assert run(vals, patience=5, restore_best_weights=True) == (8, 7, 2, 2)


def test_patience_zero_stops_at_first_non_improvement_but_never_at_epoch_0():
    assert run([1.0, 1.1, 0.5], patience=0) == (2, 1, 0, None)
    # a single epoch with patience 0: epoch > 0 is required to stop.
    assert run([1.0], patience=0) == (1, 0, 0, None)


def test_min_delta_needs_a_strictly_larger_improvement():
    # 0.75 improves by exactly min_delta (binary-exact values): not an improvement.
    assert run([1.0, 0.75, 0.8, 0.5], patience=2, min_delta=0.25) == (3, 2, 0, None)
    assert run([1.0, 0.7, 0.4, 0.1], patience=2, min_delta=0.25) == (4, 0, 3, None)


def test_negative_min_delta_is_its_absolute_value():
    assert run([1.0, 0.75, 0.8], patience=1, min_delta=-0.25) == (2, 1, 0, None)


def test_mode_auto_maximises_accuracy_and_max_mode():
    acc = [0.5, 0.6, 0.55, 0.58, 0.7]
    assert run(acc, monitor="val_accuracy", patience=2) == (4, 3, 1, None)
    assert run(acc, monitor="val_accuracy", patience=2, mode="max") == (4, 3, 1, None)
    # forcing min on an accuracy: epoch 0 is best, stops at epoch 2.
    assert run(acc, monitor="val_accuracy", patience=2, mode="min") == (3, 2, 0, None)


def test_max_mode_maximises_even_a_loss_and_min_delta_counts_upwards():
    # mode wins over the name: a rising loss is an improvement in mode="max"
    assert run([1.0, 1.5, 1.2, 1.1], patience=1, mode="max") == (3, 2, 1, None)
    # maximising with min_delta 0.125: +0.0625 is no improvement, +0.25 is (exact values)
    acc = [0.5, 0.5625, 0.75, 0.8125, 0.875]
    assert run(acc, monitor="val_accuracy", patience=1, min_delta=0.125) == (2, 1, 0, None)
    assert run(acc, monitor="val_accuracy", patience=2, min_delta=0.125) == (5, 4, 2, None)


def test_auto_mode_refuses_an_unknown_metric():
    with pytest.raises(ValueError, match=re.escape(
            "early_stopping.monitor='val_f1': cannot tell whether to minimise or maximise it; "
            "set early_stopping.mode to 'min' or 'max'")):
        EarlyStopping(EarlyStoppingConfig(monitor="val_f1"))


def test_baseline_keeps_wait_counting_until_it_is_beaten():
    # improvements that do not beat the baseline 0.5 do not reset wait, so the first
    # non-improving epoch finds wait == patience ...
    assert run([0.9, 0.8, 0.85, 0.7], patience=3, baseline=0.5) == (3, 2, 1, None)
    # ... while without a baseline wait was reset and training goes on.
    assert run([0.9, 0.8, 0.85, 0.7], patience=3) == (4, 0, 3, None)
    # the stop check only runs on non-improving epochs: steady improvement never stops.
    assert run([0.9, 0.8, 0.7, 0.6], patience=1, baseline=0.5) == (4, 0, 3, None)
    # beating the baseline resets it.
    assert run([0.9, 0.4, 0.45, 0.46, 0.47], patience=3, baseline=0.5) == (5, 4, 1, None)


def test_start_from_epoch_ignores_warm_up_epochs():
    # epochs 0, 1 ignored; epoch 2 is first best; 3, 4 worse -> stop at 4 with patience 2.
    vals = [0.1, 0.2, 0.9, 1.0, 1.1, 0.05]
    assert run(vals, patience=2, start_from_epoch=2, restore_best_weights=True) == (5, 4, 2, 2)
    # warm-up epochs keep no weights, even the best value of all
    es = EarlyStopping(EarlyStoppingConfig(start_from_epoch=2, restore_best_weights=True))
    assert es.update(0, {"val_loss": 0.1}) is False and not es.has_best_weights


def test_restores_best_weights_even_without_stopping_early():
    assert run([1.0, 0.7, 0.9, 0.95], patience=5, restore_best_weights=True) == (4, 0, 1, 1)


def test_restore_keeps_first_weights_when_nothing_improves_after_baseline_miss():
    # epoch 0 is kept as "best weights" at once; later values never improve.
    assert run([0.5, 0.6, 0.7], patience=1, restore_best_weights=True) == (2, 1, 0, 0)


def test_missing_metric_warns_and_does_nothing():
    es = EarlyStopping(EarlyStoppingConfig(monitor="val_loss", patience=0))
    with pytest.warns(UserWarning, match=re.escape(
            "early stopping monitors 'val_loss', which is not among the metrics ['loss']")):
        assert es.update(3, {"loss": 1.0}) is False
    assert not es.stop_training and es.wait == 0
    # a non-improving epoch without restore_best_weights keeps nothing: False, not just falsy
    assert es.update(0, {"val_loss": 1.0}) is False  # the best so far, but nothing to keep
    assert es.update(1, {"val_loss": 2.0}) is False


def test_state_dict_round_trip_continues_identically():
    cfg = EarlyStoppingConfig(patience=2, restore_best_weights=True)
    vals = [1.0, 0.8, 0.9, 0.85, 0.95]
    a = EarlyStopping(cfg)
    for e, v in enumerate(vals[:2]):
        a.update(e, {"val_loss": v})
    b = EarlyStopping.from_state_dict(cfg, a.state_dict())
    for e, v in enumerate(vals[2:4], 2):
        assert a.update(e, {"val_loss": v}) == b.update(e, {"val_loss": v})
    assert a.state_dict() == b.state_dict() and b.stop_training and b.stopped_epoch == 3
