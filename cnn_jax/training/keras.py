"""Keras 3's training semantics, for reproducing the lecture's Keras experiment exactly.

Two details of Keras's ``compile(loss="categorical_crossentropy", optimizer="adam")`` on a
softmax output change what a deep plain MLP learns (measured: at 24 hidden layers the first
epoch's loss is 2.80 with them and 2.90 without, and the parameters drift ~50% apart within
two epochs). With both reproduced here, training is bit-identical to Keras on the JAX backend
(``tests/training/test_keras_parity.py``).

* :func:`categorical_crossentropy` clips probabilities to ``[eps, 1 - eps]`` before the log.
* :func:`adam` adds epsilon to ``sqrt(v)`` before bias correction.

Each follows Keras 3.15's operations in Keras's order (``keras/src/backend/jax/nn.py``
``categorical_crossentropy`` and ``keras/src/optimizers/adam.py`` ``update_step``), so
float32 rounding matches too.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

__all__ = ["EPSILON", "adam", "categorical_crossentropy"]

EPSILON = 1e-7  # keras.backend.epsilon()


def categorical_crossentropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Keras's categorical cross-entropy of a ``Dense(K, softmax)`` output, per example.

    softmax -> renormalise -> clip to ``[1e-7, 1 - 1e-7]`` -> log -> ``-sum(onehot * log p)``.
    It differs from the log-softmax cross-entropy (``optax.softmax_cross_entropy``) when the
    true class's probability falls below 1e-7 (or every other's does): the clip caps the loss
    at ``-log(1e-7) = 16.1`` and gives such an example *no gradient*, where the log-softmax
    form keeps growing and pushes hardest on exactly those examples. Deep plain ELU MLPs
    produce such confident mistakes early in training, so the two losses train them
    differently. It exists to reproduce the lecture's Keras experiment.

    Args:
      logits: [B, K] pre-softmax outputs.
      labels: int [B] class indices.

    Returns:
      [B] losses.
    """
    probs = jax.nn.softmax(logits, axis=-1)
    probs = probs / jnp.sum(probs, axis=-1, keepdims=True)
    probs = jnp.clip(probs, EPSILON, 1.0 - EPSILON)
    onehot = jax.nn.one_hot(labels, logits.shape[-1], dtype=logits.dtype)
    return -jnp.sum(onehot * jnp.log(probs), axis=-1)


class AdamState(NamedTuple):
    """Step count and the first/second moment estimates (pytrees like the parameters)."""

    count: jax.Array
    mu: optax.Updates
    nu: optax.Updates


def adam(learning_rate: float, b1: float = 0.9, b2: float = 0.999,
         eps: float = 1e-7) -> optax.GradientTransformation:
    """Keras 3's Adam as an optax transformation.

    Keras steps by ``-alpha * m / (sqrt(v) + eps)`` with ``alpha = lr * sqrt(1 - b2^t) /
    (1 - b1^t)``, i.e. epsilon is added *before* bias correction. ``optax.adam`` adds it after
    (``m_hat / (sqrt(v_hat) + eps)``), so Keras's epsilon acts like optax's
    ``eps / sqrt(1 - b2^t)``: about 30x larger at the first step, converging to optax's after
    a few thousand steps. Over a short, noisy early phase (the deep MLPs of the lecture) the
    difference is visible in the trajectories. It exists to reproduce Keras exactly; use
    ``optax.adam`` otherwise. Defaults are Keras's.

    Args:
      learning_rate: step size ``lr``.
      b1, b2: moment decay rates.
      eps: added to ``sqrt(v)``.

    Returns:
      An ``optax.GradientTransformation`` whose updates are added to the parameters.
    """

    def init(params):
        zeros = lambda p: jnp.zeros_like(p)
        return AdamState(jnp.zeros((), jnp.int32), jax.tree.map(zeros, params),
                         jax.tree.map(zeros, params))

    def update(grads, state, params=None):
        del params
        count = state.count + 1
        t = count.astype(jnp.float32)
        b1_power = jnp.power(jnp.float32(b1), t)
        b2_power = jnp.power(jnp.float32(b2), t)
        alpha = jnp.float32(learning_rate) * jnp.sqrt(1 - b2_power) / (1 - b1_power)
        mu = jax.tree.map(lambda g, m: m + (g - m) * (1 - b1), grads, state.mu)
        nu = jax.tree.map(lambda g, v: v + (jnp.square(g) - v) * (1 - b2), grads, state.nu)
        updates = jax.tree.map(lambda m, v: -((m * alpha) / (jnp.sqrt(v) + eps)), mu, nu)
        return updates, AdamState(count, mu, nu)

    return optax.GradientTransformation(init, update)
