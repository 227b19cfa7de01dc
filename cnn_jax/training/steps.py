"""Pure, compiled-once pieces of training: state, loss, train/eval steps, whole epochs.

Each epoch is one XLA program: ``lax.scan`` of ``train_step`` over the batches of a
per-epoch permutation of data that already lives on the device(s); the last partial batch
is a masked full-size batch inside the same program. The batch axis is sharded over a
``Mesh`` axis ``"batch"`` (data parallelism; a 1-device mesh on one device).
"""

from __future__ import annotations

import inspect
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct
from flax.training import train_state
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from cnn_jax.data.pipeline import epoch_batches, normalize
from cnn_jax.training import keras


class TrainState(train_state.TrainState):
    """Flax train state (params, optimizer state, step, apply_fn, tx) plus ``model_state``:
    the model's other variable collections (e.g. ``{"batch_stats": ...}``; ``{}`` if none),
    updated by every training step."""

    model_state: Any = struct.field(default_factory=dict)

    @property
    def variables(self) -> dict[str, Any]:
        """``{"params": ..., **model_state}``: what ``apply_fn`` takes."""
        return {"params": self.params, **self.model_state}


def make_optimizer(name: str, learning_rate: float, **kwargs) -> optax.GradientTransformation:
    """An optimizer by name: ``keras_adam`` (:func:`cnn_jax.training.keras.adam`) or optax's.

    ``adam`` is ``optax.adam`` with Keras's default hyper-parameters b1=0.9, b2=0.999,
    eps=1e-7; it adds epsilon after bias correction where Keras adds it before, so the two
    differ in the first few thousand steps. ``keras_adam`` is Keras's update rule exactly.
    """
    if name == "keras_adam":
        return keras.adam(learning_rate, **kwargs)
    if name == "adam":
        kwargs = {"b1": 0.9, "b2": 0.999, "eps": 1e-7, **kwargs}
    factory = getattr(optax, name, None)
    if not callable(factory) or name.startswith("_"):
        raise ValueError(f"optimizer must be an optax optimizer name, got {name!r}")
    return factory(learning_rate, **kwargs)


def create_train_state(model: nn.Module, tx: optax.GradientTransformation, key: jax.Array,
                       input_shape: tuple[int, ...]) -> TrainState:
    """Initialises ``model`` on a zero batch of [1, *input_shape] and wraps it with ``tx``.

    Collections other than ``"params"`` become ``state.model_state``."""
    # One compiled program, not one per initialiser op (seconds of compile time per model).
    variables = dict(jax.jit(model.init)(key, jnp.zeros((1, *input_shape), jnp.float32)))
    params = variables.pop("params")
    state = TrainState.create(apply_fn=model.apply, params=params, tx=tx, model_state=variables)
    # A strongly typed step, so the state after an epoch has the types of the state before
    # it and the epoch program is compiled once, not twice.
    return state.replace(step=jnp.zeros((), jnp.int32))


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Log-softmax cross-entropy per example (``optax.softmax_cross_entropy``).

    Args:
      logits: [B, K]; labels: int [B].

    Returns:
      [B] losses.
    """
    return optax.softmax_cross_entropy(logits, jax.nn.one_hot(labels, logits.shape[-1]))


# Per-example losses by config name: logits [B, K], int labels [B] -> [B].
LOSSES = {
    "cross_entropy": cross_entropy,
    "keras_categorical_crossentropy": keras.categorical_crossentropy,
}


def check_loss(name: str) -> None:
    """Raises ValueError naming ``loss`` unless ``name`` is in ``LOSSES``."""
    if name not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {name!r}")


def masked_loss(logits: jax.Array, labels: jax.Array, mask: jax.Array,
                loss: str = "cross_entropy"):
    """Mean loss ``LOSSES[loss]`` and accuracy over the real (``mask``) examples.

    Args:
      logits: [B, K]; labels: int [B]; mask: bool [B]; loss: a ``LOSSES`` name.

    Returns:
      ``(loss, {"loss_sum", "correct", "count"})`` with sums over the masked batch.
    """
    check_loss(loss)
    per_example = LOSSES[loss](logits, labels)
    weights = mask.astype(jnp.float32)
    count = weights.sum()
    loss = (per_example * weights).sum() / jnp.maximum(count, 1.0)
    correct = ((jnp.argmax(logits, -1) == labels) * weights).sum()
    return loss, {"loss_sum": loss * count, "correct": correct, "count": count}


def takes_mask(apply_fn) -> bool:
    """Whether the model behind ``apply_fn`` (a bound ``Module.apply``) takes ``mask``."""
    module = getattr(apply_fn, "__self__", None)
    return module is not None and "mask" in inspect.signature(type(module).__call__).parameters


def train_step(state: TrainState, batch: dict[str, jax.Array], key: jax.Array, *,
               loss: str = "cross_entropy"):
    """One optimizer step on ``batch`` = {"image": [B,H,W,C] f32, "label": [B], "mask": [B]}.

    The model's other collections (``state.model_state``) are mutable here and their new
    values go into the new state; a model that takes ``mask`` gets the batch's.

    Returns ``(new_state, sums)`` where sums = {"loss_sum", "correct", "count"}.
    """
    extra = {"mask": batch["mask"]} if takes_mask(state.apply_fn) else {}

    def loss_fn(params):
        (logits, _), model_state = state.apply_fn(
            {"params": params, **state.model_state}, batch["image"], train=True,
            rngs={"dropout": key}, mutable=list(state.model_state), **extra)
        value, sums = masked_loss(logits, batch["label"], batch["mask"], loss)
        return value, (sums, model_state)

    (_, (sums, model_state)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    return state.apply_gradients(grads=grads, model_state={**state.model_state,
                                                           **model_state}), sums


def eval_step(variables: Any, apply_fn, batch: dict[str, jax.Array], *,
              loss: str = "cross_entropy"):
    """Loss/accuracy sums of ``variables`` (``{"params": ..., **other collections}``) on one
    masked batch, with ``train=False`` (no update; BatchNorm uses its running averages)."""
    logits, _ = apply_fn(variables, batch["image"], train=False)
    return masked_loss(logits, batch["label"], batch["mask"], loss)[1]


def _batch(images, labels, idx, mask, mean, std, mesh):
    batch = {"image": normalize(images[idx], mean, std), "label": labels[idx], "mask": mask}
    if mesh is not None:
        spec = NamedSharding(mesh, PartitionSpec("batch"))
        batch = jax.tree.map(lambda a: lax.with_sharding_constraint(a, spec), batch)
    return batch


def _summarize(sums):
    total = jax.tree.map(jnp.sum, sums)
    count = jnp.maximum(total["count"], 1.0)
    return {"loss": total["loss_sum"] / count, "accuracy": total["correct"] / count}


def train_epoch(state: TrainState, images: jax.Array, labels: jax.Array, key: jax.Array, *,
                batch_size: int, drop_remainder: bool = False, mean=None, std=None,
                mesh: Mesh | None = None, per_step: bool = False,
                loss: str = "cross_entropy"):
    """One epoch over on-device uint8 ``images`` [N,H,W,C] and ``labels`` [N].

    Returns ``(state, {"loss", "accuracy"})``: the example-weighted means over the epoch's
    batches, as Keras logs them; with ``per_step`` also ``"step_loss"`` and
    ``"step_accuracy"``, each [steps]: every batch's own means.
    """
    perm_key, step_key = jax.random.split(key)
    idx, mask = epoch_batches(perm_key, images.shape[0], batch_size,
                              drop_remainder=drop_remainder)
    keys = jax.random.split(step_key, idx.shape[0])

    def body(state, xs):
        i, m, k = xs
        return train_step(state, _batch(images, labels, i, m, mean, std, mesh), k, loss=loss)

    state, sums = lax.scan(body, state, (idx, mask, keys))
    metrics = _summarize(sums)
    if per_step:
        count = jnp.maximum(sums["count"], 1.0)
        metrics.update(step_loss=sums["loss_sum"] / count, step_accuracy=sums["correct"] / count)
    return state, metrics


def evaluate(variables: Any, images: jax.Array, labels: jax.Array, *, apply_fn,
             batch_size: int = 1000, mean=None, std=None, mesh: Mesh | None = None,
             loss: str = "cross_entropy"):
    """Loss and accuracy of ``variables`` (``{"params": ..., **other collections}``, e.g.
    ``state.variables``) on all of ``images``/``labels``, in one program."""
    idx, mask = epoch_batches(None, images.shape[0], batch_size)

    def body(carry, xs):
        i, m = xs
        batch = _batch(images, labels, i, m, mean, std, mesh)
        return carry, eval_step(variables, apply_fn, batch, loss=loss)

    _, sums = lax.scan(body, None, (idx, mask))
    return _summarize(sums)
