"""Accuracy under a transform sweep: the test set shifted, rotated or zoomed by each magnitude.

Used by the rotation and equivariance-in-practice experiments (``robustness`` scores a model
in one compiled program for experiment 5; unifying the two is open work). The transformed
images are rounded back to uint8, as the derived datasets are (``cnn_jax.data.derived``), so
any classifier that takes uint8 batches (for example ``training.evaluate``) can score them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from cnn_jax import transforms

__all__ = ["KINDS", "accuracy_sweep", "shift_directions", "transformed"]

KINDS = ("shift", "rotate", "scale")
_CHUNK = 1024  # images per compiled call (the last chunk is padded: one compile per kind)
# shift directions (rows down, columns right): down, up, right, left
_DIRECTIONS = np.array([[1, 0], [-1, 0], [0, 1], [0, -1]], np.int32)


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
