"""What one epoch of ``fit`` does, checked by hand: its batch order and its logged loss.

The determinism and resume tests compare the code with itself, so a bug that is
deterministic (every epoch shuffled with the same key, a plain mean of batch means)
passes them; these tests compare ``fit`` with an independent computation instead.
"""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from cnn_jax import models
from cnn_jax.config import TrainConfig
from cnn_jax.data.pipeline import normalize
from cnn_jax.training import DeviceData, fit, make_mesh, steps
from tests.numerics import assert_close

N, B, EPOCHS = 10, 4, 3
# learning rate 1e-30: updates far below float32 resolution, so every batch of every epoch
# sees the initial parameters and the epoch loss can be computed without training.
CFG = TrainConfig(model="mlp", model_kwargs={"num_layers": 1, "units": 8}, batch_size=B,
                  epochs=EPOCHS, num_devices=1, seed=11, optimizer="sgd", learning_rate=1e-30)


@pytest.fixture
def run(tmp_path, monkeypatch):
    """Runs ``fit`` on N examples labelled 0..N-1 and records the labels of every batch."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (N, 4, 4, 1)).astype(np.uint8)
    labels = np.arange(N, dtype=np.int32)  # the label names the example
    data = DeviceData.from_arrays(images, labels, images, labels, num_classes=N,
                                  mesh=make_mesh(1))
    batches = []
    original = steps.train_step

    def recording_step(state, batch, key, **kwargs):
        jax.debug.callback(lambda lab, m: batches.append(np.asarray(lab)[np.asarray(m)]),
                           batch["label"], batch["mask"], ordered=True)
        return original(state, batch, key, **kwargs)

    monkeypatch.setattr(steps, "train_step", recording_step)
    fit(CFG, str(tmp_path), data=data)
    with open(os.path.join(tmp_path, "metrics.jsonl")) as f:
        history = [json.loads(line) for line in f]
    steps_per_epoch = -(-N // B)
    assert len(batches) == EPOCHS * steps_per_epoch
    orders = [np.concatenate(batches[e * steps_per_epoch:(e + 1) * steps_per_epoch])
              for e in range(EPOCHS)]
    return images, orders, history


def documented_order(epoch):
    """The permutation fit's docs promise: key(seed) -> (init, epoch root); fold in the
    epoch; its first half shuffles (pipeline.epoch_batches)."""
    _, epoch_root = jax.random.split(jax.random.key(CFG.seed))
    perm_key, _ = jax.random.split(jax.random.fold_in(epoch_root, epoch))
    return np.asarray(jax.random.permutation(perm_key, N))


def test_every_epoch_has_its_own_shuffle(run):
    _, orders, _ = run
    for epoch, order in enumerate(orders):
        np.testing.assert_array_equal(np.sort(order), np.arange(N))  # each example once
        np.testing.assert_array_equal(order, documented_order(epoch))
    for a in range(EPOCHS):
        for b in range(a):
            assert not np.array_equal(orders[a], orders[b]), (a, b)


def test_logged_loss_is_the_example_weighted_mean(run):
    images, orders, history = run
    model = models.get(CFG.model, num_classes=N, **CFG.model_kwargs)
    init_key, _ = jax.random.split(jax.random.key(CFG.seed))
    state = steps.create_train_state(model, optax.sgd(1.0), init_key, images.shape[1:])
    logits, _ = model.apply({"params": state.params}, normalize(jnp.asarray(images)))
    logits = np.asarray(logits, np.float64)
    log_p = logits - logits.max(1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(1, keepdims=True))
    per_example = -log_p[np.arange(N), np.arange(N)]  # example i has label i
    # by hand: batches of 4, 4 and 2 real examples, weighted by their counts = the mean of all
    weighted = per_example.mean()
    # the logits (16 -> 8 -> 10 products, here and inside fit), a log-softmax over 10 classes,
    # then the epoch's sum over N examples and a division
    ops = 2 * (16 + 8) + 10 + 3 + N + 1
    for epoch, row in enumerate(history):
        bound = assert_close(row["loss"], weighted, ops=ops, dtype=np.float32,
                             err_msg=f"epoch {epoch + 1}")
        # the wrong summaries the test must tell apart from it, by far more than the bound
        cuts = np.split(orders[epoch], [B, 2 * B])
        plain = np.mean([per_example[c].mean() for c in cuts])  # a mean of batch means
        unmasked = np.concatenate([per_example, per_example[[0] * (3 * B - N)]]).mean()
        assert abs(plain - weighted) > 100 * bound and abs(unmasked - weighted) > 100 * bound
