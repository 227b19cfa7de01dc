"""Group actions on images and feature maps: shifts, rotations, scalings, flips.

One module serves data augmentation, derived datasets and the equivariance checks. Every
function is pure, jit-able and vmap-able; magnitudes (shifts, angles, factors) may be traced
scalars unless a docstring says otherwise.

Layouts. Images are [N, H, W, C]; a single image [H, W, C] is accepted too. Any array with
rank >= 4 is read as [N, H, W, ...]: the spatial transforms act on axes 1 and 2 and carry any
trailing axes along, so they also move feature maps with a group axis on their grid only.

Feature maps with a group axis put it last: [N, H, W, C, G].

* p4 (G = 4): index ``r`` stands for the rotation by ``r * 90`` degrees counter-clockwise.
* p4m (G = 8): index ``g = 4 m + r`` stands for ``R^r F^m``: mirror left-right (``m = 1``),
  then rotate by ``r * 90`` degrees. See ``cnn_jax.ops.group`` for the products.
* scale (G = S): index ``s`` stands for the ``s``-th scale of a geometric ladder
  ``sigma_s = sigma_0 * ratio^s`` (finest first).

The group elements act on those maps by ``(L_u y)(x, g) = y(u^-1 x, u^-1 g)``: rotating a p4
map by ``k`` quarter turns rotates the grid and rolls the rotation axis by ``k``
(``p4_rotate90``); p4m adds mirrors (``group_act``); zooming a scale map by ``ratio^k`` zooms
the grid and shifts the scale axis by ``k`` towards coarser scales (``scale_group``).

Conventions. Rows (H) grow downwards, columns (W) rightwards. ``shift(x, dy, dx)`` moves the
content ``dy`` rows down and ``dx`` columns right. Rotations are counter-clockwise as shown
on screen (``rotate90(x, 1) == numpy.rot90`` over (H, W)) about the grid centre
``((H - 1) / 2, (W - 1) / 2)``; zooms are about the same centre. Interpolation is bilinear
with zero fill: samples outside the input count as 0, as ``scipy.ndimage`` with
``order=1, mode="constant"``. Integer images come back as float32 from the resampling
functions.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from cnn_jax.ops import group as group_ops

__all__ = [
    "downsample2x",
    "flip",
    "group_act",
    "p4_rotate90",
    "rotate",
    "rotate90",
    "scale",
    "scale_axis_shift",
    "scale_group",
    "shift",
    "subpixel_shift",
    "upsample2x",
]

_HIGHEST = lax.Precision.HIGHEST


# --------------------------------------------------------------------------- helpers


def _batched(fn):
    """Lets ``fn`` (written for [N, H, W, ...]) take a single [H, W, C] image too."""

    def wrapper(x, *args, **kwargs):
        x = jnp.asarray(x)
        if x.ndim == 3:
            return fn(x[None], *args, **kwargs)[0]
        if x.ndim < 3:
            raise ValueError(f"x must be [N, H, W, C] or [H, W, C], got shape {x.shape}")
        return fn(x, *args, **kwargs)

    wrapper.__name__, wrapper.__doc__ = fn.__name__, fn.__doc__
    wrapper.__wrapped__ = fn
    return wrapper


def _float(x):
    """Integer images are resampled (and returned) as float32."""
    return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.float32)


def _check_choice(value, name: str, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")


def _check_positive(value, name: str) -> None:
    """Raises for a concrete value <= 0; traced values pass unchecked."""
    if isinstance(value, (int, float, np.number)) and not value > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")


def _interp_matrix(n: int, positions, width=1.0, *, circular: bool = False) -> jax.Array:
    """[len(positions), n] weights of a triangle kernel of half-width ``width`` (>= 1).

    Row ``i`` resamples a length-``n`` signal at the (float) position ``positions[i]``. With
    ``width == 1`` this is linear interpolation; wider kernels average (anti-aliasing). Rows
    are normalised as if the signal went on with zeros (``circular=False``) or periodically.
    """
    k = jnp.arange(-n, 2 * n, dtype=jnp.float32)  # wide enough for width <= n
    d = (positions[:, None] - k[None, :]) / width
    w = jnp.maximum(0.0, 1.0 - jnp.abs(d))
    w = w / jnp.maximum(jnp.sum(w, axis=1, keepdims=True), 1e-12)
    if circular:
        return w[:, :n] + w[:, n: 2 * n] + w[:, 2 * n:]
    return w[:, n: 2 * n]


def _separable(x, rows, cols):
    """Applies [H', H] ``rows`` and [W', W] ``cols`` to the grid of [N, H, W, ...] ``x``."""
    out = jnp.tensordot(rows, x, axes=(1, 1), precision=_HIGHEST)  # [H', N, W, ...]
    out = jnp.tensordot(cols, out, axes=(1, 2), precision=_HIGHEST)  # [W', H', N, ...]
    return jnp.moveaxis(out, (0, 1), (2, 1))


def _bilinear(x, rows, cols):
    """Samples [N, H, W, ...] ``x`` at float grid positions ``rows``/``cols`` [H', W'], 0 fill."""
    h, w = x.shape[1], x.shape[2]
    r0, c0 = jnp.floor(rows), jnp.floor(cols)
    fr, fc = rows - r0, cols - c0
    out = 0.0
    for dr, wr in ((0, 1.0 - fr), (1, fr)):
        for dc, wc in ((0, 1.0 - fc), (1, fc)):
            r, c = (r0 + dr).astype(jnp.int32), (c0 + dc).astype(jnp.int32)
            inside = (r >= 0) & (r < h) & (c >= 0) & (c < w)
            vals = x[:, jnp.clip(r, 0, h - 1), jnp.clip(c, 0, w - 1)]  # [N, H', W', ...]
            weight = jnp.where(inside, wr * wc, 0.0).astype(x.dtype)
            out = out + vals * weight.reshape(1, *weight.shape, *([1] * (x.ndim - 3)))
    return out


# ---------------------------------------------------------------------------- shifts


@_batched
def shift(x: jax.Array, dy, dx, *, mode: str = "circular") -> jax.Array:
    """Moves the content by integer pixels: ``out[i, j] = x[i - dy, j - dx]``.

    Args:
      x: [N, H, W, ...] or [H, W, C].
      dy: rows down (int or traced int scalar; negative moves up).
      dx: columns right.
      mode: "circular" (wrap around) or "zero" (fill the uncovered border with zeros).

    Returns:
      Array shaped like ``x``.

    >>> shift(jnp.arange(4.).reshape(1, 1, 4, 1), 0, 1)[0, 0, :, 0].tolist()
    [3.0, 0.0, 1.0, 2.0]
    """
    _check_choice(mode, "mode", ("circular", "zero"))
    out = jnp.roll(x, (dy, dx), axis=(1, 2))
    if mode == "zero":
        rows = jnp.arange(x.shape[1]) - dy
        cols = jnp.arange(x.shape[2]) - dx
        keep = ((rows >= 0) & (rows < x.shape[1]))[:, None] & ((cols >= 0) & (cols < x.shape[2]))
        out = out * keep.reshape(1, *keep.shape, *([1] * (x.ndim - 3))).astype(x.dtype)
    return out


@_batched
def subpixel_shift(x: jax.Array, dy, dx, *, mode: str = "zero") -> jax.Array:
    """Moves the content by fractional pixels with linear interpolation.

    ``out[i, j] = x(i - dy, j - dx)`` read off the bilinear interpolant; for integer ``dy``,
    ``dx`` this equals ``shift`` exactly.

    Args:
      x: [N, H, W, ...] or [H, W, C].
      dy: rows down (float or traced scalar).
      dx: columns right.
      mode: "zero" (outside the input is 0) or "circular" (periodic input).

    Returns:
      Array shaped like ``x``.
    """
    _check_choice(mode, "mode", ("circular", "zero"))
    x = _float(x)
    h, w = x.shape[1], x.shape[2]
    circular = mode == "circular"
    rows = _interp_matrix(h, jnp.arange(h, dtype=jnp.float32) - dy, circular=circular)
    cols = _interp_matrix(w, jnp.arange(w, dtype=jnp.float32) - dx, circular=circular)
    return _separable(x, rows, cols).astype(x.dtype)


# ------------------------------------------------------------------------- rotations


@_batched
def rotate90(x: jax.Array, k) -> jax.Array:
    """Rotates the grid by ``k`` quarter turns counter-clockwise, exactly (``numpy.rot90``).

    Args:
      x: [N, H, W, ...] or [H, W, C].
      k: int (any sign), or a traced int scalar when H == W.

    Returns:
      [N, W, H, ...] for odd ``k``, else shaped like ``x``.

    >>> rotate90(jnp.array([[0., 1.], [2., 3.]])[None, :, :, None], 1)[0, :, :, 0].tolist()
    [[1.0, 3.0], [0.0, 2.0]]
    """
    if isinstance(k, (int, np.integer)) and not isinstance(k, bool):
        return jnp.rot90(x, int(k) % 4, axes=(1, 2))
    return group_ops.transform_grid(x, jnp.asarray(k) % 4, axes=(1, 2))


@_batched
def rotate(x: jax.Array, angle, *, order: int = 1) -> jax.Array:
    """Rotates by ``angle`` degrees counter-clockwise about the grid centre, zero fill outside.

    Output pixel ``p`` reads the input at ``R(-angle) (p - c) + c`` with ``c`` the centre, by
    bilinear (``order=1``) or nearest-neighbour (``order=0``) interpolation. For multiples of
    90 degrees on a square grid it agrees with ``rotate90`` to float rounding.

    Args:
      x: [N, H, W, ...] or [H, W, C].
      angle: degrees (float or traced scalar).
      order: 0 (nearest) or 1 (bilinear).

    Returns:
      Array shaped like ``x``.
    """
    _check_choice(order, "order", (0, 1))
    x = _float(x)
    h, w = x.shape[1], x.shape[2]
    theta = jnp.deg2rad(jnp.asarray(angle, jnp.float32))
    cos, sin = jnp.cos(theta), jnp.sin(theta)
    a = jnp.arange(h, dtype=jnp.float32)[:, None] - (h - 1) / 2
    b = jnp.arange(w, dtype=jnp.float32)[None, :] - (w - 1) / 2
    rows = a * cos + b * sin + (h - 1) / 2
    cols = -a * sin + b * cos + (w - 1) / 2
    if order == 0:
        rows, cols = jnp.round(rows), jnp.round(cols)
    return _bilinear(x, rows, cols)


@_batched
def flip(x: jax.Array, axis) -> jax.Array:
    """Mirrors the image.

    Args:
      x: [N, H, W, ...] or [H, W, C].
      axis: "horizontal" or 1: mirror left-right (reverses W); "vertical" or 0: mirror
        top-bottom (reverses H).

    Returns:
      Array shaped like ``x``.
    """
    names = {"horizontal": 2, 1: 2, "vertical": 1, 0: 1}
    if isinstance(axis, bool) or axis not in names:
        raise ValueError(f"axis must be 'horizontal' (1) or 'vertical' (0), got {axis!r}")
    return jnp.flip(x, names[axis])


# ---------------------------------------------------------------------------- scales


@_batched
def scale(x: jax.Array, factor, *, antialias: bool = True) -> jax.Array:
    """Zooms by ``factor`` about the grid centre, keeping the size (zero fill outside).

    ``factor > 1`` enlarges the content (crops the border), ``factor < 1`` shrinks it.
    Output pixel ``i`` reads the input at ``(i - c) / factor + c``, per axis, by linear
    interpolation; when shrinking with ``antialias``, the triangle kernel is widened to
    ``1 / factor`` input pixels, so each output averages the input it covers.

    Args:
      x: [N, H, W, ...] or [H, W, C].
      factor: zoom factor > 0 (float or traced scalar).
      antialias: low-pass before shrinking.

    Returns:
      Array shaped like ``x``.
    """
    _check_positive(factor, "factor")
    x = _float(x)
    factor = jnp.asarray(factor, jnp.float32)
    width = jnp.maximum(1.0, 1.0 / factor) if antialias else 1.0
    mats = []
    for n in (x.shape[1], x.shape[2]):
        c = (n - 1) / 2
        pos = (jnp.arange(n, dtype=jnp.float32) - c) / factor + c
        mats.append(_interp_matrix(n, pos, width))
    return _separable(x, *mats).astype(x.dtype)


@_batched
def upsample2x(x: jax.Array) -> jax.Array:
    """Nearest-neighbour 2x upsampling: every pixel becomes a 2x2 block. [N, 2H, 2W, ...]."""
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


@_batched
def downsample2x(x: jax.Array) -> jax.Array:
    """Mean over 2x2 blocks: [N, H, W, ...] -> [N, H/2, W/2, ...] (H, W even).

    The left inverse of ``upsample2x``: ``downsample2x(upsample2x(x)) == x``.
    """
    n, h, w = x.shape[:3]
    if h % 2 or w % 2:
        raise ValueError(f"downsample2x needs even H and W, got (H, W) = {(h, w)}")
    x = _float(x)
    return x.reshape(n, h // 2, 2, w // 2, 2, *x.shape[3:]).mean(axis=(2, 4))


# ----------------------------------------------------- feature maps with a group axis


def _check_group_map(y, g):
    if jnp.ndim(y) != 5 or jnp.shape(y)[-1] != g:
        raise ValueError(f"y must be [N, H, W, C, {g}], got shape {jnp.shape(y)}")


def p4_rotate90(y: jax.Array, k) -> jax.Array:
    """Rotates a p4 map by ``k`` quarter turns: rotate the grid, roll the rotation axis by k.

    Args:
      y: [N, H, W, C, 4].
      k: int (any sign) or traced int scalar (square grid).

    Returns:
      [N, W, H, C, 4] for odd ``k``, else shaped like ``y``.
    """
    _check_group_map(y, 4)
    return jnp.roll(rotate90(y, k), k, axis=-1)


def group_act(y: jax.Array, element, group: str) -> jax.Array:
    """Acts with one element of p4 or p4m on a map [N, H, W, C, G] (module docstring).

    Args:
      y: [N, H, W, C, 4] for "p4", [N, H, W, C, 8] for "p4m".
      element: element index ``4 m + r`` (``R^r F^m``); int or traced scalar.
      group: "p4" or "p4m".

    Returns:
      ``L_u y``, shaped like ``y`` (H, W swapped for odd ``r`` on non-square grids).
    """
    _check_group_map(y, group_ops.group_order(group))
    return group_ops.act(y, element, group, spatial_axes=(1, 2), group_axis=-1)


def scale_axis_shift(y: jax.Array, steps: int) -> jax.Array:
    """Shifts a scale map ``steps`` places towards coarser scales, zero fill.

    ``out[..., s] = y[..., s - steps]``; the scale ladder is finite, so the scales shifted
    out are lost.

    Args:
      y: [N, H, W, C, S].
      steps: int (any sign).
    """
    if jnp.ndim(y) != 5:
        raise ValueError(f"y must be [N, H, W, C, S], got shape {jnp.shape(y)}")
    if not isinstance(steps, (int, np.integer)) or isinstance(steps, bool):
        raise ValueError(f"steps must be an int, got {steps!r}")
    s = y.shape[-1]
    if abs(steps) >= s:
        return jnp.zeros_like(y)
    pad = ((0, 0),) * 4 + ((max(steps, 0), max(-steps, 0)),)
    padded = jnp.pad(y, pad)
    return padded[..., max(-steps, 0): max(-steps, 0) + s]


def scale_group(y: jax.Array, ratio, steps: int, *, antialias: bool = True) -> jax.Array:
    """Zooms a scale map by ``ratio ** steps`` and shifts its scale axis by ``steps``.

    The action of the zoom by ``ratio ** steps`` on maps from a scale-equivariant conv whose
    scales grow by ``ratio`` per step.

    Args:
      y: [N, H, W, C, S].
      ratio: the layer's scale ratio (> 0).
      steps: int.
      antialias: as ``scale``.
    """
    _check_positive(ratio, "ratio")
    return scale_axis_shift(scale(y, jnp.asarray(ratio, jnp.float32) ** steps,
                                  antialias=antialias), steps)
