"""Receptive fields: analytic (from kernel sizes, strides, dilations) and gradient-based.

The analytic receptive field of a stack of layers with kernel ``k_i``, stride ``s_i`` and
dilation ``d_i`` grows as ``r_i = r_{i-1} + d_i (k_i - 1) j_{i-1}``, where ``j_i = j_{i-1} s_i``
is the distance in input pixels between neighbouring units of layer ``i`` (``r_0 = j_0 = 1``).
The gradient of one output unit with respect to the input is non-zero only inside that
unit's receptive field; its magnitude is the *effective* receptive field (Luo et al., 2016),
which concentrates in the centre.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["analytic", "gradient_map", "support"]


def analytic(layers: Sequence[tuple[int, int, int] | tuple[int, int]]) -> list[tuple[int, int]]:
    """Receptive field and jump after each layer.

    Args:
      layers: per layer ``(kernel, stride)`` or ``(kernel, stride, dilation)`` along one axis
        (a pooling window is a layer too).

    Returns:
      ``[(r_1, j_1), (r_2, j_2), ...]``: receptive field size and jump, in input pixels.

    >>> analytic([(3, 1), (3, 1), (2, 2), (3, 1)])
    [(3, 1), (5, 1), (6, 2), (10, 2)]
    """
    r, j, out = 1, 1, []
    for layer in layers:
        k, s, d = (*layer, 1) if len(layer) == 2 else layer
        if min(k, s, d) < 1:
            raise ValueError(f"kernel, stride and dilation must be >= 1, got {layer!r}")
        r, j = r + d * (k - 1) * j, j * s
        out.append((r, j))
    return out


def gradient_map(f: Callable[[jax.Array], jax.Array], x: jax.Array,
                 position: tuple[int, int] | None = None) -> jax.Array:
    """|d f(x)[0, i, j, :].sum() / d x| summed over input channels.

    Args:
      f: maps [1, H, W, C] to a feature map [1, H', W', C'].
      x: [1, H, W, C] input at which to differentiate (use random values, not zeros, so
        that no ReLU is dead everywhere).
      position: output unit ``(i, j)``; default the centre ``(H' // 2, W' // 2)``.

    Returns:
      [H, W] non-negative map: the effective receptive field of that unit.
    """
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"x must be [1, H, W, C], got shape {x.shape}")
    out_shape = jax.eval_shape(f, x).shape
    if len(out_shape) != 4:
        raise ValueError(f"f must return a [1, H', W', C'] map, got shape {out_shape}")
    i, j = position if position is not None else (out_shape[1] // 2, out_shape[2] // 2)
    grad = jax.grad(lambda a: f(a)[0, i, j, :].sum())(x)
    return jnp.abs(grad[0]).sum(-1)


def support(grad_map: jax.Array, threshold: float = 0.0) -> tuple[int, int]:
    """Height and width of the bounding box of ``grad_map > threshold`` (0 if empty)."""
    rows, cols = np.nonzero(np.asarray(grad_map) > threshold)
    if rows.size == 0:
        return 0, 0
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)
