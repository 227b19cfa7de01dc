"""Pooling over the spatial axes of [N, H, W, C] maps."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax import lax

from cnn_jax.ops.conv import as_tuple

__all__ = ["avg_pool2d", "global_avg_pool", "max_pool2d"]


def _pool(x, window, stride, padding, reducer, init, impl):
    if jnp.ndim(x) != 4:
        raise ValueError(f"x must be 4-D [N, H, W, C], got shape {jnp.shape(x)}")
    window = as_tuple(window, 2, "window")
    stride = as_tuple(window if stride is None else stride, 2, "stride")
    if padding not in ("valid", "same"):
        raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")
    n, h, w, c = x.shape
    if padding == "valid" and (window[0] > h or window[1] > w):
        raise ValueError(f"window {window} is larger than the input {(h, w)} in padding='valid'")
    if impl not in ("auto", "xla", "reshape"):
        raise ValueError(f"impl must be 'auto', 'xla' or 'reshape', got {impl!r}")
    tiled = window == stride and padding == "valid"
    if impl == "reshape" and not tiled:
        raise ValueError(f"impl='reshape' needs window == stride and padding='valid', "
                         f"got window={window}, stride={stride}, padding={padding!r}")
    if tiled and impl != "xla":
        # Non-overlapping windows: crop the remainder, split each axis, reduce. Its gradient
        # is a cheap broadcast, unlike XLA:CPU's select_and_scatter for reduce_window.
        if reducer is jnp.max:
            return _tiled_max(x, window)
        return reducer(_tiles(x, window), axis=(2, 4))
    pads = "VALID" if padding == "valid" else "SAME"
    op = lax.max if reducer is jnp.max else lax.add
    out = lax.reduce_window(x, init(x.dtype), op, (1, *window, 1), (1, *stride, 1), pads)
    if reducer is jnp.mean:
        ones = jnp.ones((1, h, w, 1), x.dtype)
        out = out / lax.reduce_window(ones, 0.0, lax.add, (1, *window, 1), (1, *stride, 1), pads)
    return out


def _tiles(x, window):
    """[N, H, W, C] -> [N, H // wh, wh, W // ww, ww, C], the remainder cropped."""
    n, h, w, c = x.shape
    (wh, ww) = window
    return x[:, : h // wh * wh, : w // ww * ww].reshape(n, h // wh, wh, w // ww, ww, c)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _tiled_max(x, window):
    """Max over non-overlapping windows; its gradient goes to the first maximum of each
    window in row-major order, as ``lax.reduce_window``'s (select_and_scatter) does."""
    return _tiles(x, window).max(axis=(2, 4))


def _tiled_max_fwd(x, window):
    tiles = _tiles(x, window)
    y = tiles.max(axis=(2, 4))
    # which tap (row-major index in the window) holds the first maximum: [N, H', W', C] int8
    first = jnp.zeros(y.shape, jnp.int8)
    taken = tiles[:, :, 0, :, 0] == y
    for tap in range(1, window[0] * window[1]):
        here = (tiles[:, :, tap // window[1], :, tap % window[1]] == y) & ~taken
        first = jnp.where(here, jnp.int8(tap), first)
        taken = taken | here
    return y, (first, x.shape)


def _tiled_max_bwd(window, residuals, dy):
    first, (n, h, w, c) = residuals
    (wh, ww), (oh, ow) = window, dy.shape[1:3]
    # a mask multiply per tap, interleaved back into [N, H'*wh, W'*ww, C]; zeros for the crop
    rows = [jnp.stack([jnp.where(first == i * ww + j, dy, 0) for j in range(ww)], axis=3)
            for i in range(wh)]
    dx = jnp.stack(rows, axis=2).reshape(n, oh * wh, ow * ww, c)
    return (jnp.pad(dx, ((0, 0), (0, h - oh * wh), (0, w - ow * ww), (0, 0))),)


_tiled_max.defvjp(_tiled_max_fwd, _tiled_max_bwd)


def max_pool2d(x: jax.Array, window: int | Sequence[int], stride=None, *,
               padding: str = "valid", impl: str = "auto") -> jax.Array:
    """Max over windows of [N, H, W, C] ``x`` -> [N, H', W', C].

    Args:
      x: [N, H, W, C].
      window: int or (int, int).
      stride: int or (int, int); defaults to ``window``.
      padding: ``"valid"`` or ``"same"`` (XLA's SAME: output ``ceil(H / stride)``).
      impl: ``"reshape"`` (non-overlapping windows only), ``"xla"`` (``reduce_window``) or
        ``"auto"`` (reshape when it applies). Both give the same values and gradients, also
        at ties: all of a window's gradient goes to its first maximum in row-major order.
        The reshape path supports reverse-mode differentiation only (no jvp).
    """
    return _pool(x, window, stride, padding, jnp.max, lambda d: -jnp.inf, impl)


def avg_pool2d(x: jax.Array, window: int | Sequence[int], stride=None, *,
               padding: str = "valid", impl: str = "auto") -> jax.Array:
    """Mean over windows of [N, H, W, C] ``x`` -> [N, H', W', C]; padding is not counted."""
    return _pool(x, window, stride, padding, jnp.mean, lambda d: 0.0, impl)


def global_avg_pool(x: jax.Array) -> jax.Array:
    """[N, H, W, C] -> [N, C]: the mean over all positions (translation invariant)."""
    if jnp.ndim(x) != 4:
        raise ValueError(f"x must be 4-D [N, H, W, C], got shape {jnp.shape(x)}")
    return jnp.mean(x, axis=(1, 2))
