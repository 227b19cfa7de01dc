"""Convolution and cross-correlation, from their definitions.

For a 2-D input ``I`` and kernel ``K``:

* cross-correlation  ``S(i, j) = sum_m sum_n I(i + m, j + n) K(m, n)``
* convolution        ``S(i, j) = sum_m sum_n I(i - m, j - n) K(m, n)``

so ``convolve(x, k) == correlate(x, flip(k))``. With dilation ``d`` the kernel taps sit
``d`` pixels apart (offsets ``m * d``); with stride ``s`` only every ``s``-th output of the
stride-1 result is kept, starting at index 0.

Padding modes, per spatial axis, for an input of length ``N`` and a kernel of effective
length ``E = d * (K - 1) + 1`` (``P = E - 1``):

* ``"valid"``: only positions where the kernel fits, length ``N - P``;
* ``"full"``: every position where kernel and input overlap (zero fill), length ``N + P``;
* ``"same"``: the centre ``N`` outputs of ``"full"``, starting at ``P // 2``
  (as ``scipy.signal.correlate``/``convolve`` and ``numpy.correlate``; odd kernels are
  centred; for even kernels ``scipy.signal.correlate2d`` alone takes the other half-pixel);
* ``"circular"``: like ``"same"`` but the input wraps around (periodic), length ``N``.

Each function exists twice: ``*_reference`` is written from the definition as a sum over
kernel offsets of shifted views of the input (slow, readable), and the public function
calls ``lax.conv_general_dilated``. Tests hold the two against each other and scipy.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from typing import Literal

import jax
import jax.numpy as jnp
from jax import lax

Padding = Literal["valid", "same", "full", "circular"]
PADDINGS = ("valid", "same", "full", "circular")
Impl = Literal["auto", "xla", "matmul"]
IMPLS = ("auto", "xla", "matmul")

__all__ = [
    "PADDINGS",
    "conv2d",
    "convolve1d",
    "convolve1d_reference",
    "convolve2d",
    "convolve2d_reference",
    "correlate1d",
    "correlate1d_reference",
    "correlate2d",
    "correlate2d_reference",
    "padding_amounts",
    "resolve_impl",
]


# ----------------------------------------------------------------------------- checks


def as_tuple(value: int | Sequence[int], ndim: int, name: str) -> tuple[int, ...]:
    """Returns ``value`` as an ``ndim``-tuple of positive ints, or raises ``ValueError``."""
    if isinstance(value, int):
        items = (value,) * ndim
    elif isinstance(value, Sequence):
        items = tuple(value)
    else:
        items = (value,)
    if len(items) != ndim or not all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in items
    ):
        raise ValueError(
            f"{name} must be a positive int or a sequence of {ndim} positive ints, got {value!r}"
        )
    return items


def _check_padding(padding: str) -> None:
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")


def _check_rank(arr: jax.Array, ndim: int, name: str, layout: str) -> None:
    if jnp.ndim(arr) != ndim:
        raise ValueError(f"{name} must be {ndim}-D {layout}, got shape {jnp.shape(arr)}")


def padding_amounts(
    in_size: Sequence[int],
    kernel_size: Sequence[int],
    padding: str,
    dilation: Sequence[int],
) -> tuple[tuple[int, int], ...]:
    """(low, high) zero padding per axis that turns ``padding`` into a 'valid' correlation.

    Raises:
      ValueError: in 'valid' mode, if the dilated kernel is larger than the input.
    """
    _check_padding(padding)
    pads = []
    for n, k, d in zip(in_size, kernel_size, dilation, strict=True):
        p = d * (k - 1)
        if padding == "valid":
            if p + 1 > n:
                raise ValueError(
                    f"kernel of size {tuple(kernel_size)} (dilation {tuple(dilation)}) is larger "
                    f"than the input of size {tuple(in_size)} in padding='valid'"
                )
            pads.append((0, 0))
        elif padding == "full":
            pads.append((p, p))
        else:  # same, circular: output index i sits at full-output index i + p // 2
            pads.append((p - p // 2, p // 2))
    return tuple(pads)


def _prepare(x, kernel, ndim, padding, stride, dilation, layout):
    _check_rank(x, ndim, "x", layout)
    _check_rank(kernel, ndim, "kernel", layout)
    if 0 in jnp.shape(kernel) or 0 in jnp.shape(x):
        raise ValueError(f"x and kernel must be non-empty, got {jnp.shape(x)}, {jnp.shape(kernel)}")
    stride = as_tuple(stride, ndim, "stride")
    dilation = as_tuple(dilation, ndim, "dilation")
    pads = padding_amounts(jnp.shape(x), jnp.shape(kernel), padding, dilation)
    dtype = jnp.result_type(x, kernel, jnp.float32)
    return jnp.asarray(x, dtype), jnp.asarray(kernel, dtype), stride, dilation, pads


# ------------------------------------------------------------------ from the definition


def _reference(x, kernel, *, ndim, flip, padding, stride, dilation, layout):
    """Sum over kernel offsets of shifted views of the (zero- or wrap-) padded input."""
    x, kernel, stride, dilation, pads = _prepare(
        x, kernel, ndim, padding, stride, dilation, layout
    )
    mode = "wrap" if padding == "circular" else "constant"
    xp = jnp.pad(x, pads, mode=mode)
    ksize = kernel.shape
    out_size = [xp.shape[a] - dilation[a] * (ksize[a] - 1) for a in range(ndim)]
    out = jnp.zeros(out_size, x.dtype)
    for offset in itertools.product(*(range(k) for k in ksize)):
        # correlation reads I(i + m); convolution reads I(i - m), i.e. the mirrored tap.
        tap = tuple(k - 1 - m for k, m in zip(ksize, offset)) if flip else offset
        view = tuple(
            slice(tap[a] * dilation[a], tap[a] * dilation[a] + out_size[a]) for a in range(ndim)
        )
        out = out + kernel[offset] * xp[view]
    return out[tuple(slice(None, None, s) for s in stride)]


def correlate1d_reference(x, kernel, *, padding: Padding = "valid", stride=1, dilation=1):
    """Cross-correlation ``S(i) = sum_m x(i + m) k(m)`` written from its definition.

    Args:
      x: [W] input.
      kernel: [K] kernel.
      padding: one of ``PADDINGS`` (see the module docstring).
      stride: positive int.
      dilation: positive int.

    Returns:
      [W'] float array.
    """
    return _reference(x, kernel, ndim=1, flip=False, padding=padding, stride=stride,
                      dilation=dilation, layout="[W]")


def convolve1d_reference(x, kernel, *, padding: Padding = "valid", stride=1, dilation=1):
    """Convolution ``S(i) = sum_m x(i - m) k(m)`` from its definition; shapes as correlate1d."""
    return _reference(x, kernel, ndim=1, flip=True, padding=padding, stride=stride,
                      dilation=dilation, layout="[W]")


def correlate2d_reference(x, kernel, *, padding: Padding = "valid", stride=1, dilation=1):
    """Cross-correlation ``S(i,j) = sum_mn x(i+m, j+n) k(m,n)`` from its definition.

    Args:
      x: [H, W] input.
      kernel: [KH, KW] kernel.
      padding: one of ``PADDINGS``.
      stride: int or (int, int).
      dilation: int or (int, int).

    Returns:
      [H', W'] float array.
    """
    return _reference(x, kernel, ndim=2, flip=False, padding=padding, stride=stride,
                      dilation=dilation, layout="[H, W]")


def convolve2d_reference(x, kernel, *, padding: Padding = "valid", stride=1, dilation=1):
    """Convolution ``S(i,j) = sum_mn x(i-m, j-n) k(m,n)`` from its definition."""
    return _reference(x, kernel, ndim=2, flip=True, padding=padding, stride=stride,
                      dilation=dilation, layout="[H, W]")


# ---------------------------------------------------------------------- fast path (XLA)


def _fast(x, kernel, *, ndim, flip, padding, stride, dilation, layout):
    x, kernel, stride, dilation, pads = _prepare(
        x, kernel, ndim, padding, stride, dilation, layout
    )
    if flip:
        kernel = jnp.flip(kernel)
    if padding == "circular":
        x, pads = jnp.pad(x, pads, mode="wrap"), ((0, 0),) * ndim
    spatial = "HW"[-ndim:] if ndim == 2 else "W"
    out = lax.conv_general_dilated(
        x[None, ..., None],
        kernel[..., None, None],
        window_strides=stride,
        padding=pads,
        rhs_dilation=dilation,
        dimension_numbers=(f"N{spatial}C", f"{spatial}IO", f"N{spatial}C"),
        precision=lax.Precision.HIGHEST,
    )
    return out[0, ..., 0]


def correlate1d(x, kernel, *, padding: Padding = "valid", stride=1, dilation=1):
    """Cross-correlation of [W] ``x`` with [K] ``kernel`` -> [W'] (see correlate1d_reference).

    >>> correlate1d(jnp.array([1., 2., 3., 4.]), jnp.array([1., 0., -1.])).tolist()
    [-2.0, -2.0]
    """
    return _fast(x, kernel, ndim=1, flip=False, padding=padding, stride=stride,
                 dilation=dilation, layout="[W]")


def convolve1d(x, kernel, *, padding: Padding = "valid", stride=1, dilation=1):
    """Convolution of [W] ``x`` with [K] ``kernel`` -> [W'] (see convolve1d_reference).

    >>> convolve1d(jnp.array([1., 2., 3., 4.]), jnp.array([1., 0., -1.])).tolist()
    [2.0, 2.0]
    """
    return _fast(x, kernel, ndim=1, flip=True, padding=padding, stride=stride,
                 dilation=dilation, layout="[W]")


def correlate2d(x, kernel, *, padding: Padding = "valid", stride=1, dilation=1):
    """Cross-correlation of [H, W] ``x`` with [KH, KW] ``kernel`` -> [H', W'].

    The lecture's worked example:

    >>> x = jnp.array([[3, 3, 2, 1, 0], [0, 0, 1, 3, 1], [3, 1, 2, 2, 3],
    ...                [2, 0, 0, 2, 2], [2, 0, 0, 0, 1]])
    >>> k = jnp.array([[0, 1, 2], [2, 2, 0], [0, 1, 2]])
    >>> correlate2d(x, k).astype(int).tolist()
    [[12, 12, 17], [10, 17, 19], [9, 6, 14]]
    """
    return _fast(x, kernel, ndim=2, flip=False, padding=padding, stride=stride,
                 dilation=dilation, layout="[H, W]")


def convolve2d(x, kernel, *, padding: Padding = "valid", stride=1, dilation=1):
    """Convolution of [H, W] ``x`` with [KH, KW] ``kernel`` -> [H', W']."""
    return _fast(x, kernel, ndim=2, flip=True, padding=padding, stride=stride,
                 dilation=dilation, layout="[H, W]")


# ------------------------------------------------------------- batched, many filters


def resolve_impl(impl: str) -> str:
    """The implementation ``conv2d`` runs for ``impl``.

    ``"auto"`` is ``"xla"`` on GPU/TPU and ``"mixed"`` on CPU: XLA's convolution for values
    that are not differentiated (its forward pass is fast on XLA:CPU); under differentiation
    the matmul form, whose patches give the kernel gradient as one matmul, and the input
    gradient as XLA's forward conv of the output gradient with the flipped kernel (XLA:CPU
    computes the native conv's own gradients several times slower, and autodiff of the
    matmul form scatter-adds its patches' gradient back).
    """
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    if impl == "auto":
        return "mixed" if jax.default_backend() == "cpu" else "xla"
    return impl


def conv2d(
    x: jax.Array,
    kernel: jax.Array,
    *,
    padding: Padding = "valid",
    stride: int | Sequence[int] = 1,
    dilation: int | Sequence[int] = 1,
    impl: Impl = "auto",
    precision=None,
) -> jax.Array:
    """Many-filter 2-D layer op: every output channel is one activation map.

    Computes the cross-correlation ``y[n,i,j,o] = sum_{m,p,c} x[n, i*s+m*d, j*s+p*d, c] k[m,p,c,o]``
    (on the padded input) -- what ML libraries compute and call "convolution".

    Args:
      x: [N, H, W, C] input.
      kernel: [KH, KW, C, O] filters.
      padding: one of ``PADDINGS`` (module docstring); ``"circular"`` wraps the input.
      stride: int or (int, int).
      dilation: int or (int, int).
      impl: ``"xla"`` (``lax.conv_general_dilated``; fast on GPU/TPU), ``"matmul"`` (sum of
        shifted views gathered into one matmul, i.e. im2col; fast gradients on XLA:CPU) or
        ``"auto"`` (by backend, see ``resolve_impl``). All give the same values and
        gradients; ``"auto"`` on CPU supports reverse-mode differentiation only (no jvp).
      precision: passed to the contraction (``lax.Precision``).

    Returns:
      [N, H', W', O] activation maps.
    """
    _check_rank(x, 4, "x", "[N, H, W, C]")
    _check_rank(kernel, 4, "kernel", "[KH, KW, C, O]")
    if x.shape[-1] != kernel.shape[2]:
        raise ValueError(
            f"kernel input channels {kernel.shape[2]} do not match x channels {x.shape[-1]}"
        )
    stride = as_tuple(stride, 2, "stride")
    dilation = as_tuple(dilation, 2, "dilation")
    pads = padding_amounts(x.shape[1:3], kernel.shape[:2], padding, dilation)
    if padding == "circular":
        x, pads = jnp.pad(x, ((0, 0), *pads, (0, 0)), mode="wrap"), ((0, 0), (0, 0))
    run = {"xla": _conv2d_xla, "matmul": _conv2d_matmul, "mixed": _conv2d_mixed}
    return run[resolve_impl(impl)](x, kernel, pads, stride, dilation, precision)


def _conv2d_xla(x, kernel, pads, stride, dilation, precision):
    return lax.conv_general_dilated(
        x, kernel, window_strides=stride, padding=pads, rhs_dilation=dilation,
        dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=precision,
    )


def _patches(xp, kh, kw, stride, dilation):
    """[N, Hp, Wp, C] padded input -> [N, H', W', KH*KW*C]: the strided view of each tap."""
    n, hp, wp, c = xp.shape
    (sh, sw), (dh, dw) = stride, dilation
    oh = (hp - dh * (kh - 1) - 1) // sh + 1
    ow = (wp - dw * (kw - 1) - 1) // sw + 1
    views = [
        lax.slice(xp, (0, m * dh, p * dw, 0),
                  (n, m * dh + (oh - 1) * sh + 1, p * dw + (ow - 1) * sw + 1, c), (1, sh, sw, 1))
        for m in range(kh)
        for p in range(kw)
    ]
    return views[0] if len(views) == 1 else jnp.concatenate(views, axis=-1)


def _patch_matmul(xp, kernel, stride, dilation, precision):
    """'valid' correlation of padded ``xp`` as im2col: [N*H'*W', KH*KW*C] @ [KH*KW*C, O]."""
    kh, kw, c, o = kernel.shape
    patches = _patches(xp, kh, kw, stride, dilation)
    # As a 2-D product: XLA:CPU ran the 4-D dot (and its weight gradient) up to 10x slower.
    out = jnp.dot(patches.reshape(-1, kh * kw * c), kernel.reshape(kh * kw * c, o),
                  precision=precision)
    return out.reshape(*patches.shape[:3], o), patches


def _conv2d_matmul(x, kernel, pads, stride, dilation, precision):
    """im2col: gather the KH*KW strided views of x, then one [.., KH*KW*C] @ [KH*KW*C, O]."""
    xp = jnp.pad(x, ((0, 0), *pads, (0, 0)))
    return _patch_matmul(xp, kernel, stride, dilation, precision)[0]


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5))
def _conv2d_mixed(x, kernel, pads, stride, dilation, precision):
    """XLA's conv for a value; under reverse-mode differentiation ``_conv2d_mixed_fwd/bwd``."""
    return _conv2d_xla(x, kernel, pads, stride, dilation, precision)


def _conv2d_mixed_fwd(x, kernel, pads, stride, dilation, precision):
    # The matmul form, to keep its patches for dk (recomputing them was slower).
    xp = jnp.pad(x, ((0, 0), *pads, (0, 0)))
    y, patches = _patch_matmul(xp, kernel, stride, dilation, precision)
    return y, (patches, kernel, x.shape[1:3])


def _conv2d_mixed_bwd(pads, stride, dilation, precision, residuals, dy):
    """dk as im2col's matmul ``patches^T dy``; dx as XLA's forward conv of dy with the
    flipped kernel (a correlation: a gather, not the scatter-add autodiff would emit).

    With ``y[i] = sum_m xp[i s + m d] k[m]``, ``dxp[j] = sum_m dys[j - m d] k[m]`` where
    ``dys`` is dy with ``s - 1`` zeros between its entries: a correlation of ``dys`` (padded
    by ``d (KH - 1)`` in front) with ``k`` flipped and transposed to [KH, KW, O, C].
    Cropping ``xp``'s padding off the result is a negative pad of ``dys``, so only x's
    pixels are computed.
    """
    patches, kernel, in_size = residuals
    kh, kw, c, o = kernel.shape
    dk = jnp.dot(patches.reshape(-1, kh * kw * c).T, dy.reshape(-1, o), precision=precision)
    spread = [(0, 0, 0)]
    for size, n_out, k, s, d, (lo, _) in zip(
        in_size, dy.shape[1:3], (kh, kw), stride, dilation, pads, strict=True
    ):
        front = d * (k - 1) - lo
        # dys's padded length must be size + d (k - 1) so that x's size outputs come out.
        back = size + d * (k - 1) - front - (n_out - 1) * s - 1
        spread.append((front, back, s - 1))
    spread.append((0, 0, 0))
    dys = lax.pad(dy, jnp.zeros((), dy.dtype), spread)
    flipped = jnp.flip(kernel, (0, 1)).transpose(0, 1, 3, 2)
    dx = _conv2d_xla(dys, flipped, ((0, 0), (0, 0)), (1, 1), dilation, precision)
    return dx, dk.reshape(kernel.shape)


_conv2d_mixed.defvjp(_conv2d_mixed_fwd, _conv2d_mixed_bwd)
