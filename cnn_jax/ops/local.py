"""Locally connected 2-D layer op: a convolution whose filter changes with position.

``y[n, i, j, o] = sum_{m, p, c} x[n, i*s + m, j*s + p, c] k[i, j, m, p, c, o]`` on the padded
input. With the same filter at every position (``k[i, j] == w`` for all i, j) this is
``ops.conv2d(x, w)``: weight sharing is exactly what makes a conv shift-equivariant.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax import lax

from cnn_jax.ops.conv import as_tuple, padding_amounts

__all__ = ["locally_connected2d", "locally_connected_output_size"]


def locally_connected_output_size(in_size: Sequence[int], kernel_size: Sequence[int],
                                  padding: str, stride: int | Sequence[int] = 1) -> tuple:
    """(OH, OW) of ``locally_connected2d`` (the same as ``ops.conv2d``'s)."""
    stride = as_tuple(stride, 2, "stride")
    pads = padding_amounts(in_size, kernel_size, padding, (1, 1))
    return tuple((n + lo + hi - k) // s + 1
                 for n, (lo, hi), k, s in zip(in_size, pads, kernel_size, stride, strict=True))


def locally_connected2d(x: jax.Array, kernel: jax.Array, *, padding: str = "valid",
                        stride: int | Sequence[int] = 1, precision=None) -> jax.Array:
    """Correlates every output position with its own filter.

    Args:
      x: [N, H, W, C] input.
      kernel: [OH, OW, KH, KW, C, O], one [KH, KW, C, O] filter bank per output position.
      padding: one of ``ops.PADDINGS`` ("circular" wraps the input).
      stride: int or (int, int).
      precision: passed to the per-position contraction.

    Returns:
      [N, OH, OW, O].
    """
    if jnp.ndim(x) != 4:
        raise ValueError(f"x must be 4-D [N, H, W, C], got shape {jnp.shape(x)}")
    if jnp.ndim(kernel) != 6:
        raise ValueError(f"kernel must be 6-D [OH, OW, KH, KW, C, O], got shape "
                         f"{jnp.shape(kernel)}")
    oh, ow, kh, kw, c, _ = kernel.shape
    if c != x.shape[-1]:
        raise ValueError(f"kernel input channels {c} do not match x channels {x.shape[-1]}")
    expected = locally_connected_output_size(x.shape[1:3], (kh, kw), padding, stride)
    if expected != (oh, ow):
        raise ValueError(f"kernel has {(oh, ow)} positions but the output is {expected} for "
                         f"x {x.shape}, padding={padding!r}, stride={stride}")
    sh, sw = as_tuple(stride, 2, "stride")
    pads = padding_amounts(x.shape[1:3], (kh, kw), padding, (1, 1))
    xp = jnp.pad(x, ((0, 0), *pads, (0, 0)), mode="wrap" if padding == "circular" else "constant")
    out = 0.0
    for m in range(kh):
        for p in range(kw):
            view = lax.slice(xp, (0, m, p, 0),
                             (x.shape[0], m + (oh - 1) * sh + 1, p + (ow - 1) * sw + 1, c),
                             (1, sh, sw, 1))  # [N, OH, OW, C]: the input under tap (m, p)
            out = out + jnp.einsum("nijc,ijco->nijo", view, kernel[:, :, m, p],
                                   precision=precision)
    return out
