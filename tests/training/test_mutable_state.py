"""Non-parameter collections (BatchNorm's batch_stats) through steps, fit, devices, restore,
and the TensorBoard events next to metrics.jsonl."""

import glob
import json
import os
import struct

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax import lax

from cnn_jax import models
from cnn_jax.config import TrainConfig
from cnn_jax.training import DeviceData, fit, make_mesh, restore, steps
from tests.numerics import assert_close, tolerance

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
    alone, _ = step(state, jax.tree.map(lambda a: a[:4], batch), key)  # the 4 real examples
    unmasked, _ = step(state, {**batch, "mask": jnp.ones(6, bool)}, key)  # control
    # Bounds (tests/numerics.py; the reference is float64): a conv output sums 3*3 products,
    # of sums of |terms| up to `big`; the batch mean sums 4*4*4 = 64 of them and divides; the
    # running mean 0.01 * mean takes a product and an add. The variance is Flax's
    # E[y^2] - E[y]^2: each mean off by (2*9 + 64 + 1) u big^2, then the difference; and the
    # running variance 0.99 + 0.01 * var is off by 3 more roundings of a value ~1.
    big = float(lax.conv_general_dilated(abs(x), abs(conv["kernel"]), (1, 1), "VALID",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC")).max())
    mean_ops, var_ops = 9 + 64 + 1 + 2, 2 * (2 * 9 + 64 + 1) + 1 + 2
    mean_bound = tolerance(np.float32, mean_ops, 0.01 * big)
    var_bound = tolerance(np.float32, var_ops, 0.01 * big**2) + tolerance(np.float32, 3)
    for name, got in (("masked", new), ("alone", alone), ("unmasked", unmasked)):
        stats = got.model_state["batch_stats"]["bn_1"]
        mean_err = np.abs(stats["mean"] - 0.01 * real.mean((0, 1, 2))).max()
        var_err = np.abs(stats["var"] - (0.99 + 0.01 * real.var((0, 1, 2)))).max()
        if name == "unmasked":  # negative control: the padding rows counted, far outside
            assert mean_err > 100 * mean_bound and var_err > 100 * var_bound, (mean_err, var_err)
        else:
            assert mean_err <= mean_bound and var_err <= var_bound, (name, mean_err, var_err)
    # The masked step equals a step on the real examples alone: their parameters differ only
    # in summation order. Per parameter, the forward chain (conv 3*3, the batch statistics'
    # sums of 64, a few for the normalisation, head 2*2*3 products, ~5 for the softmax and
    # the masked mean over 6) and the backward chain (the same, plus BatchNorm's two sums of
    # 64 and the kernel gradient's 64 products), then the SGD update; both sides added up.
    # Scale: the largest update lr * g of the array (the parameters before the step are the
    # same on both sides); the relative part of the bound covers rounding p - lr * g.
    forward = 9 + 64 + 5 + 12 + 5 + 6
    ops = 2 * (forward + (forward + 2 * 64 + 64) + 2)
    leaves = jax.tree_util.tree_leaves_with_path(new.params)
    for (path, got), want, before, wrong in zip(leaves, jax.tree.leaves(alone.params),
                                                jax.tree.leaves(state.params),
                                                jax.tree.leaves(unmasked.params), strict=True):
        update = float(np.abs(np.asarray(want) - np.asarray(before)).max())
        bound = assert_close(got, want, ops=ops, scale=update,
                             err_msg=jax.tree_util.keystr(path))
        # control: counting the 2 padding rows moves every array far outside that bound
        assert np.abs(np.asarray(wrong) - np.asarray(want)).max() > 100 * bound, path


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
    alone, features = apply(state.variables, x[:1], False)
    # one example's chain on each side: conv 3*3, ~5 for the normalisation, head 2*2*3 and a
    # bias; scale: the head's sum of |terms| (tests/numerics.py); both sides added up
    head = state.params["head"]
    scale = float((abs(features["pool_1"].reshape(1, -1)) @ abs(head["kernel"])
                   + abs(head["bias"])).max())
    bound = assert_close(alone, apply(state.variables, x, False)[0][:1], ops=2 * (9 + 5 + 12 + 1),
                         scale=scale)
    # ... while batch statistics (train=True) do: the negative control.
    train_alone = apply(state.variables, x[:2], True)[0][0]
    assert np.abs(train_alone[:1] - apply(state.variables, x, True)[0][0][:1]).max() > 100 * bound
    # And they are the trained ones: shifting the stored mean changes the output.
    shifted = jax.tree.map(lambda a: a, state.variables)
    shifted["batch_stats"] = {"bn_1": {**state.model_state["batch_stats"]["bn_1"],
                                       "mean": state.model_state["batch_stats"]["bn_1"]["mean"]
                                       + 1.0}}
    assert np.abs(apply(shifted, x[:1], False)[0] - alone).max() > 100 * bound
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
        steps_flag = {"log_steps": True} if log_steps else {}  # the others: fit's default
        runs[name] = (root / name, fit(cfg, str(root / name), data=data, mesh=mesh,
                                       **steps_flag))
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
    steps_per_epoch = -(-300 // BN.batch_size)
    for a, b in zip(one, four, strict=True):
        # The batch statistics are means over the global batch whatever the sharding; the
        # sums run in another order, so every step can move the parameters by ~batch_size
        # roundings, and those add up over the steps so far (as test_loop's four devices).
        assert_close([b["loss"], b["val_loss"]], [a["loss"], a["val_loss"]],
                     ops=a["epoch"] * steps_per_epoch * BN.batch_size, dtype=np.float32,
                     err_msg=f"epoch {a['epoch']}")


@pytest.mark.parametrize("name", ["std", "plain"])
def test_restore_reproduces_the_reported_validation_accuracy(bn_runs, tiny_arrays, name):
    workdir, results = bn_runs[name]
    run = restore(str(workdir))
    assert run.num_classes == 2 and run.config.standardize == (name == "std")
    assert set(run.variables) == {"params", "batch_stats"}
    _, _, valid_images, valid_labels = tiny_arrays
    got = run.evaluate(valid_images, valid_labels)
    assert got["accuracy"] == results["valid_accuracy"]
    # The same computation compiled in another program: per example on each side, conv 3*3,
    # ~5 for the normalisation, dense 4*4*4 and head 8 products, ~5 for the cross-entropy
    # (which moves by at most twice a logit's error), then the sum over the examples and a
    # division. Scale: the largest |logit| or the loss (tests/numerics.py).
    logits, _ = run(valid_images)
    chain = 9 + 5 + 4 * 4 * 4 + 8 + 5
    assert_close(got["loss"], results["valid_loss"], ops=2 * 2 * chain + len(valid_labels) + 1,
                 scale=max(float(np.abs(logits).max()), results["valid_loss"]),
                 dtype=np.float32)
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
    # Both from the same float32 batch sums: a step loss rounds once (its division), the
    # epoch's loss adds steps_per_epoch positive sums and divides (tests/numerics.py).
    bound = assert_close(np.dot(first, sizes) / 300, history[0]["loss"],
                         ops=steps_per_epoch + 2, dtype=np.float32)
    assert abs(first.mean() - history[0]["loss"]) > 100 * bound  # control: batch means
    step_acc = [(s, v) for t, s, v in events if t == "step/accuracy"]
    assert [s for s, _ in step_acc] == [s for s, _ in step_loss]
    acc = np.array([v for _, v in step_acc[:steps_per_epoch]])
    assert_close(np.dot(acc, sizes) / 300, history[0]["accuracy"], ops=steps_per_epoch + 2,
                 dtype=np.float32)
    for key in ("epoch_time", "samples_per_s"):
        assert [s for t, s, _ in events if t == f"epoch/{key}"] == [h["epoch"] for h in history]
    plain = _events(bn_runs["plain"][0] / "tensorboard")
    assert plain and not [t for t, _, _ in plain if t.startswith("step/")]
