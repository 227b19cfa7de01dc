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

__all__ = ["analytic", "centred_mass_width", "gradient_map", "support"]


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


def centred_mass_width(grad_map: jax.Array, fraction: float = 0.95,
                       centre: tuple[int, int] | None = None) -> int:
    """Side of the smallest square window, centred on ``centre``, that holds ``fraction`` of
    the map's total mass: a size for an effective receptive field (odd, in pixels).

    Args:
      grad_map: [H, W] non-negative map (e.g. from ``gradient_map``).
      fraction: share of the mass in (0, 1].
      centre: ``(i, j)``; default ``(H // 2, W // 2)``.

    Returns:
      ``2 r + 1`` for the smallest radius ``r`` that reaches ``fraction`` (windows are cut
      at the borders); 0 for an all-zero map.

    >>> m = jnp.zeros((9, 9)).at[4, 4].set(1.0).at[4, 6].set(1.0)
    >>> centred_mass_width(m, 0.5), centred_mass_width(m, 1.0)
    (1, 5)
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    m = np.asarray(grad_map, np.float64)
    if m.ndim != 2 or (m < 0).any():
        raise ValueError(f"grad_map must be a non-negative [H, W] map, got shape {m.shape}")
    total = m.sum()
    if total == 0:
        return 0
    ci, cj = centre if centre is not None else (m.shape[0] // 2, m.shape[1] // 2)
    for r in range(max(m.shape)):
        window = m[max(ci - r, 0): ci + r + 1, max(cj - r, 0): cj + r + 1].sum()
        if window >= fraction * total * (1 - 1e-12):
            return 2 * r + 1
    return 2 * max(m.shape) - 1
