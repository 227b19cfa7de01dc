"""Anti-aliased downsampling (BlurPool, Zhang 2019): low-pass, then subsample.

Subsampling by 2 keeps shift-equivariance only for even shifts; for odd ones a strided
max-pool or conv aliases high frequencies and its output changes a lot under a 1-pixel
shift. Blurring with a small binomial filter before subsampling removes most of what would
alias, so the output moves smoothly (as if by half a pixel) instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from cnn_jax.ops.conv import as_tuple, conv2d

__all__ = ["binomial_filter", "blur_pool2d", "max_blur_pool2d"]


def binomial_filter(size: int) -> np.ndarray:
    """[size, size] outer product of binomial coefficients, summing to 1.

    >>> (binomial_filter(3) * 16).tolist()
    [[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]
    """
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive int, got {size!r}")
    row = np.array([1.0])
    for _ in range(size - 1):
        row = np.convolve(row, [1.0, 1.0])
    return (np.outer(row, row) / row.sum() ** 2).astype(np.float32)


def blur_pool2d(x: jax.Array, *, filter_size: int = 3, stride: int | Sequence[int] = 2,
                padding: str = "same", impl: str = "auto") -> jax.Array:
    """Blurs every channel with ``binomial_filter(filter_size)``, then keeps every stride-th pixel.

    Args:
      x: [N, H, W, C].
      filter_size: binomial filter size (1 = no blur: plain subsampling).
      stride: int or (int, int).
      padding: as ``ops.conv2d`` ("circular" for periodic images).
      impl: as ``ops.conv2d``.

    Returns:
      [N, H', W', C].
    """
    if jnp.ndim(x) != 4:
        raise ValueError(f"x must be 4-D [N, H, W, C], got shape {jnp.shape(x)}")
    n, h, w, c = x.shape
    kernel = jnp.asarray(binomial_filter(filter_size), x.dtype)[:, :, None, None]
    # depthwise: channels go to the batch axis and share the one fixed filter
    planes = jnp.moveaxis(x, 3, 1).reshape(n * c, h, w, 1)
    out = conv2d(planes, kernel, padding=padding, stride=stride, impl=impl,
                 precision=lax.Precision.HIGHEST)
    return jnp.moveaxis(out.reshape(n, c, *out.shape[1:3]), 1, 3)


def max_blur_pool2d(x: jax.Array, window: int = 2, *, stride: int | Sequence[int] = 2,
                    filter_size: int = 3, padding: str = "same", impl: str = "auto") -> jax.Array:
    """MaxBlurPool: max over ``window`` at stride 1, then ``blur_pool2d`` with ``stride``.

    The anti-aliased replacement of ``ops.max_pool2d(x, window, stride)``.

    Args:
      x: [N, H, W, C].
      window: max window (int).
      stride: subsampling stride.
      filter_size: binomial blur size.
      padding: "same" (windows at the bottom/right edge see the edge pixel repeated; the blur
        zero-pads) or "circular" (the max and the blur wrap around).
      impl: as ``ops.conv2d``.

    Returns:
      [N, H', W', C].
    """
    if padding not in ("same", "circular"):
        raise ValueError(f"padding must be 'same' or 'circular', got {padding!r}")
    if jnp.ndim(x) != 4:
        raise ValueError(f"x must be 4-D [N, H, W, C], got shape {jnp.shape(x)}")
    wh, ww = as_tuple(window, 2, "window")
    mode = "wrap" if padding == "circular" else "edge"
    xp = jnp.pad(x, ((0, 0), (0, wh - 1), (0, ww - 1), (0, 0)), mode=mode)
    h, w = x.shape[1:3]
    # stride-1 max as a max of shifted views (its gradient is cheap on XLA:CPU)
    dense = xp[:, :h, :w]
    for i in range(wh):
        for j in range(ww):
            dense = jnp.maximum(dense, xp[:, i: i + h, j: j + w])
    return blur_pool2d(dense, filter_size=filter_size, stride=stride, padding=padding, impl=impl)
