"""Non-parameter collections (BatchNorm's batch_stats) through steps, fit, devices, restore,
and the TensorBoard events next to metrics.jsonl."""

import glob
import json
import os
import struct

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax import lax

from cnn_jax import models
from cnn_jax.config import TrainConfig
from cnn_jax.training import DeviceData, fit, make_mesh, restore, steps

BN = TrainConfig(model="cnn_bn", model_kwargs={"features": (4,), "dense_units": (8,)},
                 batch_size=64, epochs=4, num_devices=1, seed=1, learning_rate=1e-2)


def _bn_model():
    return models.get("cnn_bn", features=(3,), dense_units=(), num_classes=2)


def test_train_step_updates_running_statistics_from_the_real_examples_only(key):
    model = _bn_model()
    state = steps.create_train_state(model, optax.sgd(0.1), key, (6, 6, 1))
    assert set(state.model_state) == {"batch_stats"}
    x = jax.random.uniform(key, (6, 6, 6, 1))
    x = x.at[4:].set(0.0)  # two padding slots, as epoch_batches fills them
    batch = {"image": x, "label": jnp.array([0, 1, 1, 0, 0, 0]), "mask": jnp.arange(6) < 4}
    step = jax.jit(steps.train_step)
    new, _ = step(state, batch, key)
    # Reference: the conv output of the initial parameters on the 4 real examples, and
    # Flax's update ra = 0.99 ra + 0.01 batch (mean, biased variance); ra starts at (0, 1).
    conv = state.params["conv_1"]
    y = lax.conv_general_dilated(x, conv["kernel"], (1, 1), "VALID",
                                 dimension_numbers=("NHWC", "HWIO", "NHWC"))
    assert "bias" not in conv  # BatchNorm's bias replaces the conv's
    real = np.asarray(y[:4], np.float64)
    stats = new.model_state["batch_stats"]["bn_1"]
    # float32 sums over 64 values of magnitude ~1: a few ulps, far below the padding effect.
    np.testing.assert_allclose(stats["mean"], 0.01 * real.mean((0, 1, 2)), rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(stats["var"], 0.99 + 0.01 * real.var((0, 1, 2)), rtol=1e-5)
    with_padding = 0.01 * np.asarray(y, np.float64).mean((0, 1, 2))  # negative control
    assert not np.allclose(stats["mean"], with_padding, rtol=1e-3)
    # The masked step equals a step on the real examples alone (parameters and statistics).
    alone, _ = step(state, jax.tree.map(lambda a: a[:4], batch), key)
    # float32 gradients summed in another order: a few ulps of values ~1e-2.
    chex.assert_trees_all_close(new.variables, alone.variables, rtol=1e-5, atol=1e-7)


def test_evaluation_uses_the_running_statistics(key):
    model = _bn_model()
    state = steps.create_train_state(model, optax.sgd(0.1), key, (6, 6, 1))
    x = jax.random.uniform(key, (5, 6, 6, 1))
    batch = {"image": x, "label": jnp.array([0, 1, 1, 0, 1]), "mask": jnp.ones(5, bool)}
    for i in range(3):
        state, _ = jax.jit(steps.train_step)(state, batch, jax.random.fold_in(key, i))
    apply = jax.jit(lambda variables, x, train: model.apply(
        variables, x, train=train, mutable=["batch_stats"] if train else False),
        static_argnums=2)
    # Running statistics: each example's logits do not depend on the rest of the batch ...
    alone = apply(state.variables, x[:1], False)[0]
    chex.assert_trees_all_close(alone, apply(state.variables, x, False)[0][:1], rtol=1e-6)
    # ... while batch statistics (train=True) do: the negative control.
    train_alone = apply(state.variables, x[:2], True)[0][0]
    assert not np.allclose(train_alone[:1], apply(state.variables, x, True)[0][0][:1], rtol=1e-3)
    # And they are the trained ones: shifting the stored mean changes the output.
    shifted = jax.tree.map(lambda a: a, state.variables)
    shifted["batch_stats"] = {"bn_1": {**state.model_state["batch_stats"]["bn_1"],
                                       "mean": state.model_state["batch_stats"]["bn_1"]["mean"]
                                       + 1.0}}
    assert not np.allclose(apply(shifted, x[:1], False)[0], alone, rtol=1e-3)
    sums = steps.eval_step(state.variables, model.apply, batch)
    logits = apply(state.variables, x, False)[0]
    assert float(sums["correct"]) == float((jnp.argmax(logits, -1) == batch["label"]).sum())


@pytest.fixture(scope="module")
def bn_runs(tiny_arrays, tmp_path_factory):
    """cnn_bn fitted on the blobs: standardised with per-step TensorBoard, plain, 4 devices."""
    root = tmp_path_factory.mktemp("bn")
    runs = {}
    for name, cfg, n, log_steps in (("std", BN.replace(standardize=True), 1, True),
                                    ("plain", BN, 1, False),
                                    ("four", BN.replace(num_devices=4), 4, False)):
        mesh = make_mesh(n)
        data = DeviceData.from_arrays(*tiny_arrays, num_classes=2, mesh=mesh,
                                      standardize=cfg.standardize)
        runs[name] = (root / name, fit(cfg, str(root / name), data=data, mesh=mesh,
                                       log_steps=log_steps))
    return runs


def _history(workdir):
    return [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]


def test_cnn_bn_trains(bn_runs):
    for workdir, results in bn_runs.values():
        # Two linearly separable blob classes: 4 epochs reach well above chance (0.5).
        assert results["valid_accuracy"] >= 0.9, (workdir, results)
        h = _history(workdir)
        assert h[-1]["loss"] < h[0]["loss"]


def test_four_devices_match_one_device_with_batch_norm(bn_runs):
    one, four = _history(bn_runs["plain"][0]), _history(bn_runs["four"][0])
    assert bn_runs["four"][1]["devices"] == 4
    for a, b in zip(one, four, strict=True):
        # The batch statistics are means over the global batch whatever the sharding; the
        # sums run in another order, so float32 values drift by ulps per step over 20 steps.
        np.testing.assert_allclose([a["loss"], a["val_loss"]], [b["loss"], b["val_loss"]],
                                   rtol=1e-4)


@pytest.mark.parametrize("name", ["std", "plain"])
def test_restore_reproduces_the_reported_validation_accuracy(bn_runs, tiny_arrays, name):
    workdir, results = bn_runs[name]
    run = restore(str(workdir))
    assert run.num_classes == 2 and run.config.standardize == (name == "std")
    assert set(run.variables) == {"params", "batch_stats"}
    _, _, valid_images, valid_labels = tiny_arrays
    got = run.evaluate(valid_images, valid_labels)
    assert got["accuracy"] == results["valid_accuracy"]
    # the same program up to sharding annotations: the loss agrees to float32 rounding
    assert got["loss"] == pytest.approx(results["valid_loss"], rel=1e-6)
    if name == "std":  # the saved statistics are the training set's, bit for bit
        pixels = tiny_arrays[0].reshape(-1, 1) / 255.0
        np.testing.assert_array_equal(run.mean, pixels.mean(0).astype(np.float32))
        np.testing.assert_array_equal(run.std, np.maximum(pixels.std(0), 1e-6)
                                      .astype(np.float32))
        logits, _ = run(valid_images[:3])
        assert logits.shape == (3, 2)
    else:
        assert run.mean is None and run.std is None


def _events(logdir):
    """(tag, step, value) of every scalar in the TFRecord event files under ``logdir``."""
    from tensorboardX.proto import event_pb2

    out = []
    for path in sorted(glob.glob(os.path.join(logdir, "events.out.tfevents.*"))):
        data = open(path, "rb").read()
        pos = 0
        while pos < len(data):
            (length,) = struct.unpack("<Q", data[pos:pos + 8])
            event = event_pb2.Event.FromString(data[pos + 12:pos + 12 + length])
            pos += 12 + length + 4
            out += [(v.tag, event.step, v.simple_value) for v in event.summary.value]
    return out


def test_tensorboard_events_hold_every_epoch_and_step(bn_runs):
    workdir, results = bn_runs["std"]
    events = _events(workdir / "tensorboard")
    history = _history(workdir)
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        logged = [(s, v) for t, s, v in events if t == f"epoch/{key}"]
        assert logged == [(h["epoch"], np.float32(h[key])) for h in history], key
    steps_per_epoch = -(-300 // BN.batch_size)
    step_loss = [(s, v) for t, s, v in events if t == "step/loss"]
    assert [s for s, _ in step_loss] == list(range(1, 4 * steps_per_epoch + 1))
    # The example-weighted mean of an epoch's step losses is the epoch's logged loss.
    sizes = [BN.batch_size] * (steps_per_epoch - 1) + [300 - BN.batch_size * (steps_per_epoch - 1)]
    first = np.array([v for _, v in step_loss[:steps_per_epoch]])
    assert np.dot(first, sizes) / 300 == pytest.approx(history[0]["loss"], rel=1e-5)
    plain = _events(bn_runs["plain"][0] / "tensorboard")
    assert plain and not [t for t, _, _ in plain if t.startswith("step/")]
