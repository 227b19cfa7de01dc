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

from cnn_jax.ops.conv import PADDINGS, as_tuple, conv2d, padding_amounts

__all__ = ["MAX_BLUR_PADDINGS", "binomial_filter", "blur_pool2d", "max_blur_pool2d"]


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
                padding: str = "reflect", impl: str = "auto") -> jax.Array:
    """Blurs every channel with ``binomial_filter(filter_size)``, then keeps every stride-th pixel.

    Args:
      x: [N, H, W, C].
      filter_size: binomial filter size (1 = no blur: plain subsampling).
      stride: int or (int, int).
      padding: "reflect" (default, as Zhang 2019: the border is mirrored without repeating
        the edge pixel, so a constant image stays constant), "circular" (periodic images),
        or any other ``ops.conv2d`` padding ("same" pads with zeros, which darkens the
        border: 0.75 along the edge and 0.5625 in the corner of an all-ones image).
      impl: as ``ops.conv2d``.

    Returns:
      [N, H', W', C]; H' = ceil(H / stride) for "reflect", "same" and "circular" (like a
      strided "same" conv).
    """
    if jnp.ndim(x) != 4:
        raise ValueError(f"x must be 4-D [N, H, W, C], got shape {jnp.shape(x)}")
    if padding not in (*PADDINGS, "reflect"):
        raise ValueError(f"padding must be 'reflect' or one of {PADDINGS}, got {padding!r}")
    n, h, w, c = x.shape
    kernel = jnp.asarray(binomial_filter(filter_size), x.dtype)[:, :, None, None]
    # depthwise: channels go to the batch axis and share the one fixed filter
    planes = jnp.moveaxis(x, 3, 1).reshape(n * c, h, w, 1)
    if padding == "reflect":  # the amounts of "same", filled by mirroring
        pads = padding_amounts((h, w), (filter_size, filter_size), "same", (1, 1))
        planes = jnp.pad(planes, ((0, 0), *pads, (0, 0)), mode="reflect")
        padding = "valid"
    out = conv2d(planes, kernel, padding=padding, stride=stride, impl=impl,
                 precision=lax.Precision.HIGHEST)
    return jnp.moveaxis(out.reshape(n, c, *out.shape[1:3]), 1, 3)


MAX_BLUR_PADDINGS = ("reflect", "same", "circular")


def max_blur_pool2d(x: jax.Array, window: int | Sequence[int] = 2, *,
                    stride: int | Sequence[int] = 2, filter_size: int = 3,
                    padding: str = "reflect", impl: str = "auto") -> jax.Array:
    """MaxBlurPool (Zhang 2019): max over ``window`` at stride 1, then ``blur_pool2d``.

    The anti-aliased replacement of ``ops.max_pool2d(x, window, stride)``, with its output
    size: H' = floor((H - window) / stride) + 1 (H = 9, window 2, stride 2: 4).

    Args:
      x: [N, H, W, C].
      window: max window, int or (int, int).
      stride: subsampling stride, int or (int, int).
      filter_size: binomial blur size.
      padding: "reflect" (default; the dense max reads only whole windows, H - window + 1 of
        them, and the blur mirrors the border), "same" (the same, but the blur pads with
        zeros) or "circular" (the max and the blur wrap around: shift-equivariant for
        periodic images; the output is cut to the size above, a no-op when stride divides H).
      impl: as ``ops.conv2d``.

    Returns:
      [N, H', W', C], the shape of ``ops.max_pool2d(x, window, stride)``.
    """
    if padding not in MAX_BLUR_PADDINGS:
        raise ValueError(f"padding must be one of {MAX_BLUR_PADDINGS}, got {padding!r}")
    if jnp.ndim(x) != 4:
        raise ValueError(f"x must be 4-D [N, H, W, C], got shape {jnp.shape(x)}")
    wh, ww = as_tuple(window, 2, "window")
    sh, sw = as_tuple(stride, 2, "stride")
    h, w = x.shape[1:3]
    if wh > h or ww > w:
        raise ValueError(f"window {window!r} is larger than the input grid {(h, w)}")
    if padding == "circular":
        x = jnp.pad(x, ((0, 0), (0, wh - 1), (0, ww - 1), (0, 0)), mode="wrap")
    dh, dw = x.shape[1] - wh + 1, x.shape[2] - ww + 1
    # stride-1 max as a max of shifted views (its gradient is cheap on XLA:CPU)
    dense = x[:, :dh, :dw]
    for i in range(wh):
        for j in range(ww):
            dense = jnp.maximum(dense, x[:, i: i + dh, j: j + dw])
    out = blur_pool2d(dense, filter_size=filter_size, stride=(sh, sw),
                      padding=padding, impl=impl)
    return out[:, : (h - wh) // sh + 1, : (w - ww) // sw + 1]
