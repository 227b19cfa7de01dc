"""On-device input pipeline: the dataset lives on the accelerator; batches are index gathers.

An epoch is a permutation of example indices cut into ``[steps, batch_size]``; the last
partial batch (if any) is padded with index 0 and a ``False`` mask, so one compiled program
(``lax.scan`` over steps) covers the whole epoch, partial batch included, like Keras.
A dataset too large for memory would replace ``to_device`` + index gathers by a streaming
iterator that yields the same ``{"image", "label", "mask"}`` batches.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["epoch_batches", "normalize", "num_steps", "to_device"]


def num_steps(num_examples: int, batch_size: int, drop_remainder: bool = False) -> int:
    """Batches per epoch: ``ceil(N / B)`` (Keras) or ``floor(N / B)`` with ``drop_remainder``."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if num_examples <= 0:
        raise ValueError(f"num_examples must be positive, got {num_examples}")
    steps = num_examples // batch_size if drop_remainder else math.ceil(num_examples / batch_size)
    if steps == 0:
        raise ValueError(
            f"drop_remainder=True with batch_size={batch_size} > num_examples={num_examples} "
            "leaves no batch"
        )
    return steps


def epoch_batches(
    key: jax.Array | None,
    num_examples: int,
    batch_size: int,
    *,
    drop_remainder: bool = False,
) -> tuple[jax.Array, jax.Array]:
    """Example indices for one epoch, batched.

    Args:
      key: PRNG key for the permutation, or ``None`` for the identity order (evaluation).
      num_examples: N (static).
      batch_size: B (static).
      drop_remainder: drop the last ``N % B`` examples (default: keep them, as Keras does).

    Returns:
      ``(indices, mask)``, each [steps, B]: int32 indices into the dataset, and ``True`` where
      the slot holds a real example (``False`` only in the padded tail of the last batch).
    """
    steps = num_steps(num_examples, batch_size, drop_remainder)
    order = (jnp.arange(num_examples) if key is None
             else jax.random.permutation(key, num_examples)).astype(jnp.int32)
    used = steps * batch_size
    if used <= num_examples:
        idx, mask = order[:used], jnp.ones(used, bool)
    else:
        pad = used - num_examples
        idx = jnp.concatenate([order, jnp.zeros(pad, jnp.int32)])
        mask = jnp.arange(used) < num_examples
    return idx.reshape(steps, batch_size), mask.reshape(steps, batch_size)


def normalize(images: jax.Array, mean=None, std=None) -> jax.Array:
    """uint8 [..., C] -> float32 in [0, 1]; then ``(x - mean) / std`` per channel if given."""
    x = images.astype(jnp.float32) / 255.0
    if mean is not None:
        x = x - jnp.asarray(mean, jnp.float32)
    if std is not None:
        x = x / jnp.asarray(std, jnp.float32)
    return x


def to_device(images: np.ndarray, labels: np.ndarray, sharding=None) -> tuple[jax.Array, jax.Array]:
    """Places uint8 [N, H, W, C] images and int32 [N] labels on the device(s), once."""
    if images.ndim != 4 or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 [N, H, W, C], got {images.dtype} {images.shape}")
    if labels.shape != images.shape[:1]:
        raise ValueError(f"labels must be [N] with N={images.shape[0]}, got {labels.shape}")
    return (jax.device_put(images, sharding),
            jax.device_put(labels.astype(np.int32), sharding))
