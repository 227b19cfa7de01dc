"""The pieces of training in ``cnn_jax.training.steps`` against hand-written references:
the optimizer by name (Adam's update rule in NumPy), the losses, masking, one SGD step, and
the per-step and per-epoch sums."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from cnn_jax.training import keras, steps


class Linear(nn.Module):
    """logits = flatten(x) @ W + b, returned as (logits, features) like every project model."""

    classes: int = 3

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = x.reshape((x.shape[0], -1))
        return nn.Dense(self.classes)(x), x


class NeedsMask(Linear):
    """Its logits depend on the batch's mask (masked rows are zeroed), which it must get."""

    @nn.compact
    def __call__(self, x, train: bool = False, mask=None):
        mask = jnp.ones(x.shape[0], bool) if mask is None else mask  # init passes none
        logits = nn.Dense(self.classes)(x.reshape((x.shape[0], -1)))
        return logits * mask[:, None], x


class TrainScaled(Linear):
    """Doubles its logits when ``train`` (its default): evaluation must pass train=False."""

    @nn.compact
    def __call__(self, x, train: bool = True):
        logits = nn.Dense(self.classes)(x.reshape((x.shape[0], -1)))
        return logits * (2.0 if train else 1.0), x


class Dropped(Linear):
    """Dropout before the logits: a training step needs the "dropout" key it is given."""

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.Dropout(0.5, deterministic=not train)(x.reshape((x.shape[0], -1)))
        return nn.Dense(self.classes)(x), x


def _np_ce(logits, labels):
    """Log-softmax cross-entropy per example in float64."""
    z = np.asarray(logits, np.float64)
    z = z - z.max(-1, keepdims=True)
    return np.log(np.exp(z).sum(-1)) - z[np.arange(len(labels)), labels]


def _np_adam(grads, lr, b1, b2, eps):
    """optax's Adam (epsilon after bias correction) by hand: the updates of each step."""
    m = v = 0.0
    out = []
    for t, g in enumerate(grads, 1):
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        out.append(-lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps))
    return out


def _updates(tx, grads):
    state = tx.init(jnp.zeros_like(grads[0]))
    out = []
    for g in grads:
        u, state = tx.update(g, state, jnp.zeros_like(g))
        out.append(np.asarray(u, np.float64))
    return out


# Gradients of very different sizes: tiny ones make epsilon matter, the second step b1/b2.
_GRADS = [jnp.array([1e-6, 0.5, -2.0], jnp.float32), jnp.array([3e-6, -0.25, 1.0], jnp.float32),
          jnp.array([-1e-6, 0.1, 4.0], jnp.float32)]


def test_adam_by_name_has_keras_defaults_and_takes_overrides():
    for got, want in zip(_updates(steps.make_optimizer("adam", 0.01), _GRADS),
                         _np_adam([np.float64(g) for g in _GRADS], 0.01, 0.9, 0.999, 1e-7)):
        np.testing.assert_allclose(got, want, rtol=1e-4)
    for got, want in zip(_updates(steps.make_optimizer("adam", 0.5, b1=0.5, b2=0.75, eps=1e-6),
                                  _GRADS),
                         _np_adam([np.float64(g) for g in _GRADS], 0.5, 0.5, 0.75, 1e-6)):
        np.testing.assert_allclose(got, want, rtol=1e-4)


def test_other_names_are_optax_or_keras_optimizers():
    sgd = _updates(steps.make_optimizer("sgd", 0.25, momentum=0.5), _GRADS[:2])
    np.testing.assert_allclose(sgd[1], -0.25 * (_GRADS[1] + 0.5 * _GRADS[0]), rtol=1e-6)
    for got, want in zip(_updates(steps.make_optimizer("keras_adam", 0.01, eps=1e-3), _GRADS),
                         _updates(keras.adam(0.01, eps=1e-3), _GRADS)):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", ["nope", "_src", "__getattr__", "tree_utils"])
def test_unknown_optimizer_names_are_refused_by_name(name):
    with pytest.raises(ValueError) as e:
        steps.make_optimizer(name, 0.1)
    assert str(e.value) == f"optimizer must be an optax optimizer name, got {name!r}"


def test_create_train_state_splits_collections_and_types_the_step(key):
    class WithStats(nn.Module):
        @nn.compact
        def __call__(self, x, train: bool = False):
            x = nn.BatchNorm(use_running_average=not train)(x.reshape((x.shape[0], -1)))
            return nn.Dense(2)(x), x

    state = steps.create_train_state(WithStats(), optax.sgd(0.1), key, (2, 3, 1))
    assert state.params["Dense_0"]["kernel"].shape == (6, 2)
    assert set(state.params) == {"BatchNorm_0", "Dense_0"}
    assert set(state.model_state) == {"batch_stats"}
    assert state.variables == {"params": state.params, **state.model_state}
    assert state.step.dtype == jnp.int32 and state.step.shape == () and int(state.step) == 0
    plain = steps.create_train_state(Linear(), optax.sgd(0.1), key, (4,))
    assert plain.model_state == {} and plain.variables == {"params": plain.params}


def test_cross_entropy_against_numpy(key):
    logits = 5 * jax.random.normal(key, (6, 4))
    labels = jnp.array([0, 3, 1, 1, 2, 0])
    np.testing.assert_allclose(steps.cross_entropy(logits, labels), _np_ce(logits, labels),
                               rtol=1e-5, atol=1e-6)


def test_masked_loss_sums_only_the_real_examples(key):
    logits = jnp.array([[2.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 1.0], [9.0, 0.0, 0.0]])
    labels = jnp.array([0, 0, 2, 1])
    mask = jnp.array([True, True, False, True])
    ce = _np_ce(logits, labels)
    for name, per_example in (("cross_entropy", ce),
                              ("keras_categorical_crossentropy",
                               np.asarray(keras.categorical_crossentropy(logits, labels)))):
        loss, sums = steps.masked_loss(logits, labels, mask, name)
        want = per_example[[0, 1, 3]].sum()
        np.testing.assert_allclose(loss, want / 3, rtol=1e-6)
        np.testing.assert_allclose(sums["loss_sum"], want, rtol=1e-6)
        assert float(sums["correct"]) == 1.0 and float(sums["count"]) == 3.0  # row 2 is masked
    assert float(steps.masked_loss(logits, labels, mask)[0]) == pytest.approx(ce[[0, 1, 3]].mean())
    none, sums = steps.masked_loss(logits, labels, jnp.zeros(4, bool))
    assert float(none) == 0.0 and float(sums["count"]) == 0.0  # not 0/0


def test_unknown_loss_names_are_refused_by_name():
    with pytest.raises(ValueError) as e:
        steps.masked_loss(jnp.zeros((1, 2)), jnp.zeros(1, int), jnp.ones(1, bool), "mse")
    assert str(e.value) == ("loss must be one of ['cross_entropy', "
                            "'keras_categorical_crossentropy'], got 'mse'")
    steps.check_loss("keras_categorical_crossentropy")  # a known name passes


def test_takes_mask_reads_the_models_signature():
    assert steps.takes_mask(NeedsMask().apply)
    assert not steps.takes_mask(Linear().apply)
    assert not steps.takes_mask(lambda variables, x, mask=None: x)  # not a bound Module.apply


def _batch(key, n=5):
    kx, ky = jax.random.split(key)
    return {"image": jax.random.normal(kx, (n, 2, 2, 1)),
            "label": jax.random.randint(ky, (n,), 0, 3),
            "mask": jnp.arange(n) < n - 2}


def test_train_step_is_one_sgd_step_on_the_masked_mean_loss(key):
    batch = _batch(key)
    state = steps.create_train_state(Linear(), optax.sgd(0.5), key, (2, 2, 1))

    def reference_loss(params):  # the masked mean cross-entropy, written out
        w, b = params["Dense_0"]["kernel"], params["Dense_0"]["bias"]
        logits = batch["image"].reshape(5, -1) @ w + b
        ce = -jax.nn.log_softmax(logits)[jnp.arange(5), batch["label"]]
        return (ce * batch["mask"]).sum() / batch["mask"].sum()

    grads = jax.grad(reference_loss)(state.params)
    new, sums = jax.jit(steps.train_step)(state, batch, key)
    for got, p, g in zip(jax.tree.leaves(new.params), jax.tree.leaves(state.params),
                         jax.tree.leaves(grads)):
        np.testing.assert_allclose(got, p - 0.5 * g, rtol=1e-5, atol=1e-6)
    assert int(new.step) == 1 and float(sums["count"]) == 3.0
    np.testing.assert_allclose(sums["loss_sum"], 3 * reference_loss(state.params), rtol=1e-5)


def test_train_step_passes_the_mask_and_the_dropout_key(key):
    batch = _batch(key)
    state = steps.create_train_state(NeedsMask(), optax.sgd(0.5), key, (2, 2, 1))
    _, sums = steps.train_step(state, batch, key)
    # Masked rows have zero logits: the loss is the real rows' cross-entropy of the model.
    logits, _ = NeedsMask().apply(state.variables, batch["image"], True, batch["mask"])
    np.testing.assert_allclose(sums["loss_sum"], _np_ce(logits, batch["label"])[:3].sum(),
                               rtol=1e-5)
    state = steps.create_train_state(Dropped(), optax.sgd(0.5), key, (2, 2, 1))
    a, _ = steps.train_step(state, batch, jax.random.key(1))
    b, _ = steps.train_step(state, batch, jax.random.key(2))
    again, _ = steps.train_step(state, batch, jax.random.key(1))
    kernel = lambda s: np.asarray(s.params["Dense_0"]["kernel"])  # noqa: E731
    assert not np.array_equal(kernel(a), kernel(b))
    np.testing.assert_array_equal(kernel(a), kernel(again))


def test_eval_step_is_deterministic_and_counts_the_mask(key):
    batch = _batch(key)
    state = steps.create_train_state(Dropped(), optax.sgd(0.5), key, (2, 2, 1))
    sums = steps.eval_step(state.variables, state.apply_fn, batch)  # no dropout key needed
    logits, _ = Dropped().apply(state.variables, batch["image"])
    np.testing.assert_allclose(sums["loss_sum"], _np_ce(logits, batch["label"])[:3].sum(),
                               rtol=1e-5)
    correct = (np.argmax(logits, -1) == batch["label"])[:3].sum()
    assert float(sums["correct"]) == correct and float(sums["count"]) == 3.0


def test_epoch_metrics_per_step_and_evaluate_against_numpy(key):
    """N = 10, batch 4: batches of 4, 4 and 2 real examples; the epoch's loss is the
    example-weighted mean of the steps', and evaluate scores every example once."""
    images = jax.random.randint(key, (10, 2, 2, 1), 0, 256).astype(jnp.uint8)
    labels = jnp.arange(10) % 3
    state = steps.create_train_state(Linear(), optax.sgd(0.0), key, (2, 2, 1))  # frozen
    mean, std = jnp.float32(100.0), jnp.float32(50.0)
    _, m = steps.train_epoch(state, images, labels, key, batch_size=4, mean=mean, std=std,
                             per_step=True)
    logits, _ = Linear().apply(state.variables, (images / 255.0 - mean) / std)
    ce = _np_ce(logits, labels)
    assert m["step_loss"].shape == m["step_accuracy"].shape == (3,)
    counts = np.array([4, 4, 2])
    np.testing.assert_allclose(m["loss"], ce.mean(), rtol=1e-5)  # every example once
    np.testing.assert_allclose((np.asarray(m["step_loss"]) * counts).sum() / 10, ce.mean(),
                               rtol=1e-5)
    acc = (np.argmax(logits, -1) == labels).mean()
    np.testing.assert_allclose(m["accuracy"], acc, rtol=1e-6)
    np.testing.assert_allclose((np.asarray(m["step_accuracy"]) * counts).sum() / 10, acc,
                               rtol=1e-6)
    _, plain = steps.train_epoch(state, images, labels, key, batch_size=4, mean=mean, std=std)
    assert set(plain) == {"loss", "accuracy"}
    for batch_size in (3, 1000):
        got = steps.evaluate(state.variables, images, labels, apply_fn=state.apply_fn,
                             batch_size=batch_size, mean=mean, std=std)
        np.testing.assert_allclose(got["loss"], ce.mean(), rtol=1e-5)
        np.testing.assert_allclose(got["accuracy"], acc, rtol=1e-6)
    keras_loss = steps.evaluate(state.variables, images, labels, apply_fn=state.apply_fn,
                                mean=mean, std=std, loss="keras_categorical_crossentropy")
    want = np.asarray(keras.categorical_crossentropy(logits, labels)).mean()
    np.testing.assert_allclose(keras_loss["loss"], want, rtol=1e-5)


def test_eval_step_passes_train_false(key):
    batch = _batch(key)
    state = steps.create_train_state(TrainScaled(), optax.sgd(0.5), key, (2, 2, 1))
    sums = steps.eval_step(state.variables, state.apply_fn, batch)
    logits, _ = TrainScaled().apply(state.variables, batch["image"], False)
    np.testing.assert_allclose(sums["loss_sum"], _np_ce(logits, batch["label"])[:3].sum(),
                               rtol=1e-5)


def _confident(key):
    """A frozen linear model whose probabilities reach far below Keras's 1e-7 clip, so its
    clipped loss and the log-softmax loss differ; and 9 uint8 images for it."""
    images = jax.random.randint(key, (9, 2, 2, 1), 0, 256).astype(jnp.uint8)
    labels = jnp.arange(9) % 3
    state = steps.create_train_state(Linear(), optax.sgd(0.0), key, (2, 2, 1))
    state = state.replace(params=jax.tree.map(lambda p: 300.0 * p, state.params))
    logits, _ = Linear().apply(state.variables, images / 255.0)
    return state, images, labels, logits


def test_the_loss_name_reaches_every_step_and_evaluation(key):
    state, images, labels, logits = _confident(key)
    ce = _np_ce(logits, labels)
    clipped = np.asarray(keras.categorical_crossentropy(logits, labels), np.float64)
    assert abs(ce.mean() - clipped.mean()) > 0.1  # the two losses tell the runs apart
    name = "keras_categorical_crossentropy"
    _, m = steps.train_epoch(state, images, labels, key, batch_size=4, loss=name)
    np.testing.assert_allclose(m["loss"], clipped.mean(), rtol=1e-5)
    got = steps.evaluate(state.variables, images, labels, apply_fn=state.apply_fn, loss=name)
    np.testing.assert_allclose(got["loss"], clipped.mean(), rtol=1e-5)
    sums = steps.eval_step(state.variables, state.apply_fn,
                           {"image": images / 255.0, "label": labels,
                            "mask": jnp.ones(9, bool)}, loss=name)
    np.testing.assert_allclose(sums["loss_sum"], clipped.sum(), rtol=1e-5)


def test_single_example_batches_and_drop_remainder(key):
    """N = 9, batch 4: the last batch holds one example (its mean is its own loss), and
    ``drop_remainder`` leaves it out."""
    state, images, labels, logits = _confident(key)
    state = state.replace(params=jax.tree.map(lambda p: p / 300.0, state.params))
    logits = logits / 300.0
    ce = _np_ce(logits, labels)
    _, m = steps.train_epoch(state, images, labels, key, batch_size=4, per_step=True)
    assert m["step_loss"].shape == (3,)
    np.testing.assert_allclose(sorted(np.asarray(m["step_loss"]))[0:3], sorted(
        [ce[i].mean() for i in np.split(np.asarray(_perm(key, 9)), [4, 8])]), rtol=1e-5)
    _, dropped = steps.train_epoch(state, images, labels, key, batch_size=4, per_step=True,
                                   drop_remainder=True)
    assert dropped["step_loss"].shape == (2,)
    np.testing.assert_allclose(dropped["loss"], ce[np.asarray(_perm(key, 9))[:8]].mean(),
                               rtol=1e-5)
    one = steps.evaluate(state.variables, images[:1], labels[:1], apply_fn=state.apply_fn)
    np.testing.assert_allclose(one["loss"], ce[0], rtol=1e-5)


def _perm(key, n):
    """The example order of ``train_epoch``'s epoch (its first key half shuffles)."""
    from cnn_jax.data.pipeline import epoch_batches

    idx, mask = epoch_batches(jax.random.split(key)[0], n, 4)
    return np.asarray(idx)[np.asarray(mask)]


def test_batches_are_sharded_over_the_mesh(key):
    """With a 4-device mesh the batch of every step is split along "batch" (the compiled
    program carries the constraint); without a mesh there is none."""
    from cnn_jax.training import make_mesh

    images = jnp.zeros((8, 2, 2, 1), jnp.uint8)
    labels = jnp.zeros(8, jnp.int32)
    state = steps.create_train_state(Linear(), optax.sgd(0.1), key, (2, 2, 1))
    mesh = make_mesh(4)

    def hlo(fn, *args, **kw):
        return jax.jit(lambda *a: fn(*a, **kw)).lower(*args).as_text()

    for mesh_arg, want in ((mesh, True), (None, False)):
        train = hlo(steps.train_epoch, state, images, labels, key, batch_size=4, mesh=mesh_arg)
        evals = hlo(steps.evaluate, state.variables, images, labels, apply_fn=state.apply_fn,
                    batch_size=4, mesh=mesh_arg)
        for text in (train, evals):
            assert ('sharding_constraint' in text and '[{"batch"}' in text) is want
