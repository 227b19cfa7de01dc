"""Accuracy under a transform sweep: how a trained model's test accuracy moves as its inputs
are shifted, rotated or zoomed by growing amounts (experiments 5 and 8 of issue 10).

>>> import jax.numpy as jnp
>>> images = jnp.zeros((4, 5, 5, 1), jnp.uint8).at[:, 2, 0, 0].set(255)  # a dot, column 0
>>> labels = jnp.array([1, 1, 1, 1])
>>> dot_left = lambda p, x: jnp.stack([x[:, 2, 1, 0], x[:, 2, 0, 0]], -1)  # 1 iff at col 0
>>> shift_right = lambda x, m: transforms.shift(x, 0, m, mode="zero")
>>> accuracy_under_transform(dot_left, None, images, labels, shift_right, [0, 1],
...                          batch_size=3)
array([1., 0.])
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from cnn_jax import transforms  # noqa: F401  (the usual source of ``transform``; doctest)
from cnn_jax.data.pipeline import epoch_batches

__all__ = ["accuracy_under_transform", "predictor"]


def predictor(model: nn.Module) -> Callable[[Any, jax.Array], jax.Array]:
    """``(params, x [N, H, W, C] float) -> logits [N, K]`` of a registry model."""
    return lambda params, x: model.apply({"params": params}, x, train=False)[0]


def accuracy_under_transform(predict: Callable[[Any, jax.Array], jax.Array], params, images,
                             labels, transform: Callable[[jax.Array, jax.Array], jax.Array],
                             magnitudes: Sequence[float], *, batch_size: int = 500,
                             mean=None, std=None, static: bool = False) -> np.ndarray:
    """Accuracy of ``predict(params, .)`` on ``transform(images, m)`` for every magnitude.

    The transform acts on intensities in [0, 1] (so zero fill is a black border), then the
    training normalisation ``(x - mean) / std`` (as ``data.pipeline.normalize``) is applied.
    Parameters, images and the magnitude are arguments of one compiled program (not
    constants baked into it); with ``static`` the magnitude is a Python value instead (one
    compilation per magnitude, for transforms such as ``transforms.rotate90``).

    Args:
      predict: ``(params, x [B, H', W', C]) -> logits [B, K]`` (e.g. ``predictor(model)``).
      params: its parameters (any pytree; None for a parameter-free ``predict``).
      images: uint8 [N, H, W, C].
      labels: int [N].
      transform: ``(x [B, H, W, C] float, m) -> [B, H', W', C]``.
      magnitudes: the values of ``m``.
      batch_size: examples per step (the last batch is padded and masked).
      mean, std: per-channel normalisation of the training data, or None.
      static: pass ``m`` as a Python value.

    Returns:
      float64 [len(magnitudes)]: accuracy at each magnitude.
    """
    images, labels = jnp.asarray(images), jnp.asarray(labels)
    if images.ndim != 4 or images.dtype != jnp.uint8:
        raise ValueError(f"images must be uint8 [N, H, W, C], got {images.dtype} "
                         f"{images.shape}")
    if labels.shape != images.shape[:1]:
        raise ValueError(f"labels must be [N] with N={images.shape[0]}, got {labels.shape}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    idx, mask = epoch_batches(None, images.shape[0], batch_size)

    def correct(params, images, labels, m):
        def body(total, xs):
            i, ok = xs
            x = transform(images[i].astype(jnp.float32) / 255.0, m)
            if mean is not None:
                x = x - jnp.asarray(mean, jnp.float32)
            if std is not None:
                x = x / jnp.asarray(std, jnp.float32)
            hit = (jnp.argmax(predict(params, x), -1) == labels[i]) & ok
            return total + hit.sum(), None

        return lax.scan(body, jnp.zeros((), jnp.int32), (idx, mask))[0]

    if static:
        counts = [jax.jit(functools.partial(correct, m=m))(params, images, labels)
                  for m in magnitudes]
    else:
        run = jax.jit(correct)
        counts = [run(params, images, labels, jnp.asarray(m)) for m in magnitudes]
    return np.asarray(jax.device_get(counts), np.float64) / images.shape[0]
