"""The groups p4 and p4m acting on images, filters and feature maps with a group axis.

Elements. p4m has 8 elements, indexed ``g = 4 * m + r`` with ``m`` in {0, 1} and ``r`` in
{0, 1, 2, 3}; element ``g`` acts on the plane as ``T_g = R^r F^m``: first mirror left-right
(``F``, reverses the W axis) when ``m = 1``, then rotate by ``r * 90`` degrees counter-
clockwise (``R``, ``jnp.rot90`` over the (H, W) axes) about the centre of the grid. p4 is the
subgroup ``m = 0`` (indices 0..3). Products follow from ``F R = R^-1 F``:
``(m1, r1)(m2, r2) = (m1 + m2 mod 2, r1 + (-1)^m1 r2 mod 4)``.

Feature maps on the group carry a trailing group axis: [N, H, W, C, G] with G = 4 (p4) or 8
(p4m). Element ``u`` acts on such a map ``y`` by ``(L_u y)(x, g) = y(u^-1 x, u^-1 g)``: the grid
is transformed by ``T_u`` and the group axis permuted, ``new[..., g] = T_u(old[..., u^-1 g])``.
For p4 this is "rotate the grid and cyclically shift the rotation axis by k".

Group convolution after Cohen & Welling (2016), as cross-correlation like ``ops.conv2d``: the
output for element ``g`` is the correlation of the input with the filter transformed by
``L_g``. The filter bank is expanded over the group once and correlated in a single
``ops.conv2d`` call, so the layer gets the same fast path (``impl``) as a plain conv.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from cnn_jax.ops.conv import conv2d

__all__ = [
    "GROUPS",
    "act",
    "cayley_table",
    "check_centred_kernel",
    "expand_group_kernel",
    "expand_lifting_kernel",
    "group_conv2d",
    "group_order",
    "group_pool",
    "inverse",
    "keeps_centre",
    "lifting_conv2d",
    "transform_grid",
]

GROUPS = ("p4", "p4m")


def group_order(group: str) -> int:
    """Number of elements of ``group`` ("p4": 4, "p4m": 8)."""
    if group not in GROUPS:
        raise ValueError(f"group must be one of {GROUPS}, got {group!r}")
    return 4 if group == "p4" else 8


def _product(a: int, b: int) -> int:
    m1, r1 = divmod(a, 4)
    m2, r2 = divmod(b, 4)
    return 4 * ((m1 + m2) % 2) + (r1 + (-1) ** m1 * r2) % 4


def cayley_table(group: str) -> np.ndarray:
    """[G, G] int table with ``table[a, b]`` the index of the product ``a b``.

    >>> cayley_table("p4")[1].tolist()  # a quarter turn after r quarter turns
    [1, 2, 3, 0]
    >>> int(cayley_table("p4m")[4, 1])  # F R = R^-1 F = R^3 F
    7
    """
    n = group_order(group)
    return np.array([[_product(a, b) for b in range(n)] for a in range(n)], np.int32)


def inverse(group: str) -> np.ndarray:
    """[G] int array: ``inverse(group)[g]`` is the index of ``g^-1``."""
    table = cayley_table(group)
    return np.array([int(np.flatnonzero(row == 0)[0]) for row in table], np.int32)


def _check_element(element, group: str):
    n = group_order(group)
    if isinstance(element, (int, np.integer)) and not isinstance(element, bool):
        if not 0 <= element < n:
            raise ValueError(f"element must be in [0, {n}) for group {group!r}, got {element}")
        return int(element)
    return jnp.asarray(element) % n  # traced index


def _rot90(x, k, axes):
    if isinstance(k, int):
        return jnp.rot90(x, k, axes=axes)
    if x.shape[axes[0]] != x.shape[axes[1]]:
        raise ValueError(f"a traced rotation needs a square grid, got shape {x.shape}")
    return lax.switch(k % 4, [lambda v, i=i: jnp.rot90(v, i, axes=axes) for i in range(4)], x)


def transform_grid(x: jax.Array, element, *, axes: Sequence[int] = (-3, -2)) -> jax.Array:
    """Applies ``T_g = R^r F^m`` (``g = 4 m + r``) to the grid spanned by ``axes`` (H, W).

    Args:
      x: array with the two grid axes at ``axes``.
      element: p4m element index in [0, 8) (p4 elements are 0..3); an int or a traced
        scalar (then the grid must be square).
      axes: the (H, W) axes of ``x``.

    Returns:
      The transformed array; H and W swap for odd ``r`` on non-square grids.
    """
    element = _check_element(element, "p4m")
    axes = tuple(a % x.ndim for a in axes)
    if isinstance(element, int):
        m, r = divmod(element, 4)
        return _rot90(jnp.flip(x, axes[1]) if m else x, r, axes)
    mirrored = jnp.where(element >= 4, jnp.flip(x, axes[1]), x)
    return _rot90(mirrored, element % 4, axes)


def act(y: jax.Array, element, group: str, *, spatial_axes: Sequence[int] = (1, 2),
        group_axis: int = -1) -> jax.Array:
    """``L_u y``: transforms the grid by ``T_u`` and permutes the group axis by ``u^-1 g``.

    Args:
      y: feature map (or filter bank) with grid axes ``spatial_axes`` and a group axis of
        length G, e.g. [N, H, W, C, G].
      element: index of ``u`` in [0, G); int or traced scalar.
      group: "p4" or "p4m".
      spatial_axes: the (H, W) axes of ``y``.
      group_axis: the group axis of ``y``.

    Returns:
      Array like ``y`` with ``new[..., g] = T_u(old[..., u^-1 g])``.
    """
    n = group_order(group)
    if y.shape[group_axis] != n:
        raise ValueError(f"group axis {group_axis} of y must have length {n} for {group!r}, "
                         f"got shape {y.shape}")
    element = _check_element(element, group)
    table, inv = cayley_table(group), inverse(group)  # perm[g] = index of u^-1 g
    if isinstance(element, int):
        perm = table[inv[element]]
    else:
        perm = jnp.asarray(table)[jnp.asarray(inv)[element]]
    return transform_grid(jnp.take(y, perm, axis=group_axis), element, axes=spatial_axes)


@functools.cache
def _expansion_index(group: str, size: int, lifting: bool) -> np.ndarray:
    """Where each tap of the expanded filter bank comes from, as one constant gather index.

    Lifting: [K, K, G] with ``transform_grid`` by ``g`` of the [K, K] grid of flat indices
    ``i * K + j`` at ``[..., g]``. Group: [K, K, G, G] with ``act`` by ``g`` of the [K, K, G]
    grid of flat indices ``(i * K + j) * G + h`` at ``[..., h, g]``. One gather (and one
    scatter-add in the gradient) then replaces G transformed copies, which keeps the compiled
    programs small.
    """
    n = group_order(group)
    with jax.ensure_compile_time_eval():  # concrete values even while a caller is traced
        if lifting:
            flat = jnp.arange(size * size, dtype=jnp.int32).reshape(size, size)
            copies = [transform_grid(flat, g, axes=(0, 1)) for g in range(n)]
        else:
            flat = jnp.arange(size * size * n, dtype=jnp.int32).reshape(size, size, n)
            copies = [act(flat, g, group, spatial_axes=(0, 1), group_axis=2) for g in range(n)]
        index = np.stack([np.asarray(c) for c in copies], axis=-1)
    index.flags.writeable = False  # cached
    return index


def expand_lifting_kernel(kernel: jax.Array, group: str) -> jax.Array:
    """Filters for a Z2 -> G conv: one copy of each filter per group element.

    Args:
      kernel: [KH, KW, C, O] filters (KH == KW).
      group: "p4" or "p4m".

    Returns:
      [KH, KW, C, O * G] with output channel ``o * G + g`` holding ``T_g`` of filter ``o``.
    """
    if kernel.ndim != 4 or kernel.shape[0] != kernel.shape[1]:
        raise ValueError(f"kernel must be [K, K, C, O] (square), got shape {kernel.shape}")
    k, _, c, o = kernel.shape
    source = _expansion_index(group, k, lifting=True)  # [K, K, G]
    bank = kernel.reshape(k * k, c, o)[source]  # [K, K, G, C, O]
    return bank.transpose(0, 1, 3, 4, 2).reshape(k, k, c, o * source.shape[-1])


def expand_group_kernel(kernel: jax.Array, group: str) -> jax.Array:
    """Filters for a G -> G conv: ``L_g`` of the filter bank for every output element ``g``.

    Args:
      kernel: [KH, KW, C, G, O] filters over the grid and the input group axis (KH == KW).
      group: "p4" or "p4m".

    Returns:
      [KH, KW, C * G, O * G]; input channel ``c * G + h``, output channel ``o * G + g``.
    """
    n = group_order(group)
    if kernel.ndim != 5 or kernel.shape[0] != kernel.shape[1] or kernel.shape[3] != n:
        raise ValueError(f"kernel must be [K, K, C, {n}, O] for {group!r}, "
                         f"got shape {kernel.shape}")
    k, _, c, _, o = kernel.shape
    source = _expansion_index(group, k, lifting=False)  # [K, K, G (h), G (g)]
    bank = kernel.transpose(0, 1, 3, 2, 4).reshape(k * k * n, c, o)[source]
    return bank.transpose(0, 1, 4, 2, 5, 3).reshape(k, k, c * n, o * n)


def check_centred_kernel(kernel_size: int, padding: str) -> None:
    """Raises unless a ``kernel_size`` filter keeps the rotation centre with ``padding``.

    With "same" or "circular" padding an even window puts the output grid half a pixel off
    the input's centre, so rotating the input does not rotate the output (p4 lifting, K = 2,
    6x6: relative error 1.65). "valid" and "full" pad symmetrically and stay exact for any K.

    Raises:
      ValueError: for an even ``kernel_size`` with "same" or "circular" padding.
    """
    if padding in ("same", "circular") and kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd with padding={padding!r} for a group conv "
                         f"(an even window is off-centre by half a pixel), got {kernel_size}; "
                         f"use an odd size or padding='valid'")


def lifting_conv2d(x: jax.Array, kernel: jax.Array, group: str, *, padding: str = "same",
                   stride=1, dilation=1, impl: str = "auto", precision=None) -> jax.Array:
    """Z2 -> G correlation: ``y[n, i, j, o, g] = (x ⋆ T_g k_o)[n, i, j]``.

    Args:
      x: [N, H, W, C] images.
      kernel: [K, K, C, O] filters; K odd for "same" / "circular" padding, any K for "valid"
        and "full" (``check_centred_kernel``).
      group: "p4" or "p4m".
      padding, stride, dilation, impl, precision: as ``ops.conv2d``.

    Returns:
      [N, H', W', O, G] feature map on the group.
    """
    n = group_order(group)
    check_centred_kernel(kernel.shape[0], padding)
    out = conv2d(x, expand_lifting_kernel(kernel, group), padding=padding, stride=stride,
                 dilation=dilation, impl=impl, precision=precision)
    return out.reshape(*out.shape[:3], kernel.shape[3], n)


def group_conv2d(y: jax.Array, kernel: jax.Array, group: str, *, padding: str = "same",
                 stride=1, dilation=1, impl: str = "auto", precision=None) -> jax.Array:
    """G -> G correlation: output element ``g`` correlates ``y`` with ``L_g`` of the filters.

    Args:
      y: [N, H, W, C, G] feature map on the group.
      kernel: [K, K, C, G, O] filters; K as in ``lifting_conv2d``.
      group: "p4" or "p4m".
      padding, stride, dilation, impl, precision: as ``ops.conv2d``.

    Returns:
      [N, H', W', O, G].
    """
    n = group_order(group)
    if y.ndim != 5 or y.shape[-1] != n:
        raise ValueError(f"y must be [N, H, W, C, {n}] for {group!r}, got shape {y.shape}")
    check_centred_kernel(kernel.shape[0], padding)
    flat = y.reshape(*y.shape[:3], y.shape[3] * n)
    out = conv2d(flat, expand_group_kernel(kernel, group), padding=padding, stride=stride,
                 dilation=dilation, impl=impl, precision=precision)
    return out.reshape(*out.shape[:3], kernel.shape[4], n)


def keeps_centre(size: int, window: int, stride: int) -> bool:
    """Whether sampling windows at stride keeps an axis symmetric about its centre.

    A layer that reads windows of ``window`` pixels every ``stride`` pixels from a (padded)
    axis of ``size`` pixels, starting at 0, covers the positions symmetrically about the
    centre -- so that mirroring or rotating the input permutes its outputs exactly -- if and
    only if ``(size - window) % stride == 0``. Otherwise the last window stops short of the
    far edge and a rotated input is sampled on a grid shifted by a fraction of the stride:
    a p4 network then loses exact invariance. E.g. a 2x2 max-pool needs an even size; a
    3x3 stride-2 'valid' conv an odd one.

    Args:
      size: axis length after padding.
      window: window length (dilated kernel or pooling window).
      stride: step between windows.

    >>> keeps_centre(28, 2, 2), keeps_centre(15, 2, 2), keeps_centre(15, 3, 2)
    (True, False, True)
    """
    for name, value in (("size", size), ("window", window), ("stride", stride)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if window > size:
        raise ValueError(f"window {window} is larger than size {size}")
    return (size - window) % stride == 0


def group_pool(y: jax.Array, reduce: str = "max") -> jax.Array:
    """Reduces the trailing group axis: [N, H, W, C, G] -> [N, H, W, C] (invariant features).

    Args:
      y: [..., G] map on a group.
      reduce: "max" or "mean".
    """
    if reduce not in ("max", "mean"):
        raise ValueError(f"reduce must be 'max' or 'mean', got {reduce!r}")
    return jnp.max(y, axis=-1) if reduce == "max" else jnp.mean(y, axis=-1)
