"""Accuracy under a transform sweep: how a trained model's test accuracy moves as its inputs
are shifted, rotated or zoomed by growing amounts (experiments 5, 7, 8 and 9 of issue 10).

Two entry points:

* :func:`accuracy_under_transform`: any float transform ``(x, m) -> x'`` of the images, applied
  and scored in one compiled program by a ``predict(params, x)`` function;
* :func:`accuracy_sweep`: one of the named :data:`KINDS` (shift each example in its own
  direction, rotate, zoom) applied by :func:`transformed`, which rounds the result back to
  uint8 as the derived datasets do (``cnn_jax.data.derived``), so that any classifier of uint8
  batches (for example a bound ``training.evaluate``, with its normalisation and model state)
  scores it.

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

from cnn_jax import transforms
from cnn_jax.data.pipeline import epoch_batches

__all__ = ["KINDS", "accuracy_sweep", "accuracy_under_transform", "predictor",
           "shift_directions", "transformed"]

KINDS = ("shift", "rotate", "scale")
_CHUNK = 1024  # images per compiled call (the last chunk is padded: one compile per kind)
# shift directions (rows down, columns right): down, up, right, left
_DIRECTIONS = np.array([[1, 0], [-1, 0], [0, 1], [0, -1]], np.int32)


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


def shift_directions(n: int, seed: int = 0) -> np.ndarray:
    """One unit direction per example, uniform over down/up/right/left: int32 [n, 2]."""
    return _DIRECTIONS[np.random.default_rng(seed).integers(0, 4, n)]


def _shift_each(x, magnitude, directions):
    steps = (directions * jnp.round(magnitude).astype(jnp.int32))
    one = lambda image, d: transforms.shift(image[None], d[0], d[1], mode="zero")[0]
    return jax.vmap(one)(x, steps)


@functools.partial(jax.jit, static_argnums=0)
def _apply(kind: str, x, magnitude, directions):
    x = x.astype(jnp.float32)
    if kind == "shift":
        out = _shift_each(x, magnitude, directions)
    elif kind == "rotate":
        out = transforms.rotate(x, magnitude)
    else:
        out = transforms.scale(x, magnitude)
    return jnp.clip(jnp.round(out), 0, 255).astype(jnp.uint8)


def transformed(images: np.ndarray, kind: str, magnitude: float, *, seed: int = 0) -> np.ndarray:
    """The images moved by one magnitude of one transform, uint8 [N, H, W, C].

    Args:
      images: uint8 [N, H, W, C].
      kind: "shift" (whole pixels, zero fill, each example in its own direction from
        ``shift_directions(N, seed)``), "rotate" (degrees counter-clockwise, bilinear, zero
        fill) or "scale" (zoom factor about the centre, > 0).
      magnitude: pixels, degrees or factor.
      seed: chooses the shift directions.

    Returns:
      uint8 [N, H, W, C].
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if kind == "shift" and magnitude != round(magnitude):
        raise ValueError(f"shift magnitude must be a whole number of pixels, got {magnitude!r}")
    if kind == "scale" and not magnitude > 0:
        raise ValueError(f"scale magnitude must be > 0, got {magnitude!r}")
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"images must be uint8 [N, H, W, C], got {images.dtype} {images.shape}")
    n = len(images)
    directions = shift_directions(n, seed)
    chunk = max(1, min(n, _CHUNK))
    out = np.empty_like(images)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        x, d = images[start:stop], directions[start:stop]
        if stop - start < chunk:
            pad = chunk - (stop - start)
            x = np.concatenate([x, np.repeat(x[:1], pad, 0)])
            d = np.concatenate([d, np.repeat(d[:1], pad, 0)])
        out[start:stop] = np.asarray(_apply(kind, x, np.float32(magnitude), d))[: stop - start]
    return out


def accuracy_sweep(accuracy: Callable[[np.ndarray, np.ndarray], float], images: np.ndarray,
                   labels: np.ndarray, kind: str, magnitudes: Sequence[float], *,
                   seed: int = 0) -> list[float]:
    """``accuracy(transformed(images, kind, m), labels)`` for every magnitude ``m``.

    Args:
      accuracy: scores uint8 images [N, H, W, C] against int labels [N], e.g. a bound
        ``training.evaluate``.
      images, labels: the test set.
      kind, seed: as ``transformed``.
      magnitudes: the sweep.

    Returns:
      One accuracy per magnitude.
    """
    return [float(accuracy(transformed(images, kind, m, seed=seed), labels)) for m in magnitudes]
