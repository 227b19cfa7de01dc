"""Derived copies of a dataset: rotated, shifted within a larger canvas, scaled (MNIST-scale).

Each example gets its own transformation parameter, drawn from a NumPy generator seeded by
``seed`` (the same seed gives the same set) and recorded in ``Dataset.params``. The images
are transformed by :mod:`cnn_jax.transforms`, the project's one transform module, in
float32, then rounded and clipped back to uint8. Labels are unchanged.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from cnn_jax import transforms
from cnn_jax.data.dataset import Dataset

__all__ = ["rotated", "scaled", "shifted"]

_CHUNK = 2048  # images per compiled call; the last chunk is padded, so one compile per set


def rotated(ds: Dataset, *, angles: float | tuple[float, float] = (0.0, 360.0),
            seed: int = 0) -> Dataset:
    """Rotates each image about its centre (bilinear, zero fill), counter-clockwise.

    Args:
      ds: images [N, H, W, C].
      angles: a fixed angle in degrees, or ``(low, high)`` to draw each example's angle
        uniformly from ``[low, high)``.
      seed: chooses the angles.

    Returns:
      The rotated set, [N, H, W, C], with ``params["angle"]`` float32 [N] in degrees.
    """
    angle = _draw(angles, "angles", len(ds), seed).astype(np.float32)
    images = _apply(_rotate_one, ds.images, angle)
    return _derive(ds, images, {"angle": angle}, f"rotated(angles={angles}, seed={seed})")


def scaled(ds: Dataset, *, factors: float | tuple[float, float] = (0.3, 1.0),
           seed: int = 0) -> Dataset:
    """Rescales each image about its centre and pads it back to its size (MNIST-scale).

    Args:
      ds: images [N, H, W, C].
      factors: a fixed zoom factor, or ``(low, high)`` to draw each example's factor
        uniformly from ``[low, high)``; all must be > 0 (< 1 shrinks, with anti-aliasing).
      seed: chooses the factors.

    Returns:
      The scaled set, [N, H, W, C], with ``params["factor"]`` float32 [N].
    """
    factor = _draw(factors, "factors", len(ds), seed).astype(np.float32)
    if np.min(factors) <= 0:
        raise ValueError(f"factors must be > 0, got {factors!r}")
    images = _apply(_scale_one, ds.images, factor)
    return _derive(ds, images, {"factor": factor}, f"scaled(factors={factors}, seed={seed})")


def shifted(ds: Dataset, *, canvas: int | tuple[int, int], seed: int = 0) -> Dataset:
    """Places each image at a random whole-pixel position inside a larger zero canvas.

    Every position that keeps the whole image inside the canvas is equally likely.

    Args:
      ds: images [N, H, W, C].
      canvas: the output size, ``S`` (square) or ``(H', W')``, at least ``(H, W)``.
      seed: chooses the positions.

    Returns:
      The set on the canvas, [N, H', W', C] (``info.image_shape`` updated), with
      ``params["dy"]``, ``params["dx"]``, int32 [N]: the row and column of each image's
      top-left pixel on the canvas.
    """
    h, w, c = ds.info.image_shape
    size = (canvas, canvas) if isinstance(canvas, int) else canvas
    if (not isinstance(size, tuple) or len(size) != 2
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in size)
            or size[0] < h or size[1] < w):
        raise ValueError(f"canvas must be an int or (H', W') of ints at least the image size "
                         f"({h}, {w}), got {canvas!r}")
    rng = np.random.default_rng(seed)
    dy = rng.integers(0, size[0] - h + 1, len(ds)).astype(np.int32)
    dx = rng.integers(0, size[1] - w + 1, len(ds)).astype(np.int32)
    padded = np.zeros((len(ds), *size, c), np.uint8)
    padded[:, :h, :w] = ds.images  # at the top-left corner; the shift moves it into place
    images = _apply(_shift_one, padded, dy, dx)
    info = dataclasses.replace(ds.info, image_shape=(*size, c))
    return _derive(ds, images, {"dy": dy, "dx": dx}, f"shifted(canvas={size}, seed={seed})",
                   info)


# ----------------------------------------------------------------------------- helpers


def _draw(value: float | tuple[float, float], name: str, n: int, seed: int) -> np.ndarray:
    """``n`` copies of a fixed number, or ``n`` uniform draws from ``[low, high)``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return np.full(n, value, np.float64)
    if (isinstance(value, tuple) and len(value) == 2
            and all(isinstance(v, (int, float)) and math.isfinite(v) for v in value)
            and value[0] <= value[1]):
        return np.random.default_rng(seed).uniform(value[0], value[1], n)
    raise ValueError(f"{name} must be a finite number or a (low, high) tuple with low <= high, "
                     f"got {value!r}")


def _rotate_one(image, angle):
    return transforms.rotate(image, angle)


def _scale_one(image, factor):
    return transforms.scale(image, factor)


def _shift_one(image, dy, dx):
    return transforms.shift(image, dy, dx, mode="zero")


@functools.partial(jax.jit, static_argnums=0)
def _run(fn, images, *params):
    out = jax.vmap(fn)(images.astype(jnp.float32), *params)
    return jnp.clip(jnp.round(out), 0, 255).astype(jnp.uint8)


def _apply(fn: Callable[..., jax.Array], images: np.ndarray, *params: np.ndarray) -> np.ndarray:
    """Maps ``fn(image [H, W, C] float32, *scalars) -> [H, W, C]`` over the set, to uint8.

    The set goes through in chunks of ``_CHUNK`` images (the last one padded), so memory
    stays bounded and ``fn`` compiles once per chunk shape.
    """
    n = len(images)
    chunk = max(1, min(n, _CHUNK))
    out = np.empty_like(images)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        pad = chunk - (stop - start)
        batch = [np.concatenate([a[start:stop], np.repeat(a[:1], pad, 0)]) if pad else
                 a[start:stop] for a in (images, *params)]
        out[start:stop] = np.asarray(_run(fn, *batch))[: stop - start]
    return out


def _derive(ds: Dataset, images: np.ndarray, params: dict[str, np.ndarray], what: str,
            info=None) -> Dataset:
    previous = dict(ds.params or {})
    if clash := sorted(set(previous) & set(params)):
        raise ValueError(f"dataset {ds.info.name!r} already records params {clash}; "
                         "a second transformation of the same kind would overwrite them")
    info = info or ds.info
    info = dataclasses.replace(info, name=f"{ds.info.name}+{what.split('(')[0]}")
    return dataclasses.replace(ds, images=images, info=info, source=f"{ds.source}|{what}",
                               params={**previous, **params})
