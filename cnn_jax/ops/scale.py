"""Scale-equivariant convolution over a discrete ladder of scales (after Sosnovik et al., 2020).

Filters are linear combinations of a fixed basis of Hermite-Gaussian functions that is drawn
at every scale of a geometric ladder ``sigma_s = sigma_0 * ratio^s`` (s = 0..S-1). The basis
at scale ``sigma`` is ``psi_sigma(u) = psi(u / sigma) / sigma^2``, so correlating an image
zoomed by ``ratio`` with ``psi_{ratio sigma}`` gives the zoomed response to ``psi_sigma``:
zooming the input by ``ratio`` zooms every map and moves it one step along the scale axis
(``transforms.scale_group``). On a pixel grid this holds approximately (sampling, the kernel
window and the ends of the ladder), best for smooth inputs.

Maps on the scale ladder are [N, H, W, C, S], finest scale first.

Two ways to compute a layer, the same values (``method``):

* ``"bank"``: the filters ``sum_b w[.., b] basis[s, .., b]`` are expanded over the scales
  into one block filter bank and correlated in one ``ops.conv2d`` call. The bank holds
  every (input scale, output scale) block, zeros included, and each output pixel reads
  K * K taps.
* ``"separable"``: by linearity the layer is a sum over basis functions of (input ⋆ basis
  function) times the coefficients, and every Hermite-Gaussian function is a product of a
  1-D factor along H and one along W. So the input is correlated with the fixed basis one
  axis at a time -- each pass a product with a constant [H', H] banded (Toeplitz) matrix
  that already holds the padding -- and the responses are then mixed by the coefficients
  in one matrix product, with the scale folded into the batch. No zero blocks, no im2col
  patches, a cost that does not grow with K, only matrix products to differentiate.
  On the SESN of experiments/equivariance_practice.flags (K = 7, 3 scales, features
  8, 16, 32) it made a CPU training epoch 3.5x faster (benchmark.py --models=sesn: 43.7 s
  -> 12.6 s on 10k Fashion-MNIST images, 2 loaded cores), counting 12x fewer FLOPs.

``"auto"`` (default) takes ``"separable"`` when the basis is a concrete array whose
functions are all rank one (``hermite_gaussian_basis``'s are), else ``"bank"``.

Layouts (``layout``): ``"NHWCS"`` (default) as above. A network of these layers runs faster
scale-major, where the banded passes and the mixing product need no transposes of the maps
(models.SESN, ``scale_major``): ``"SHWNC"`` maps [S, H, W, N, C] and ``"SWHNC"`` maps
[S, W, H, N, C]. A layer reading one scale-major layout writes the other (its last pass runs
along the first spatial axis), so a chain of layers never transposes; pooling, activations
and the pool over scales treat H and W alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from cnn_jax.ops.conv import conv2d, padding_amounts
from cnn_jax.ops.group import group_pool

METHODS = ("auto", "separable", "bank")
LAYOUTS = ("NHWCS", "SHWNC", "SWHNC")
# a layer's output layout, given its input's (the lifting conv's input is [N, H, W, C])
LAYOUT_AFTER = {"NHWCS": "NHWCS", "SHWNC": "SWHNC", "SWHNC": "SHWNC"}
# axes of a layout's map in the NHWCS order, and back
_TO_NHWCS = {"NHWCS": (0, 1, 2, 3, 4), "SHWNC": (3, 1, 2, 4, 0), "SWHNC": (3, 2, 1, 4, 0)}
_FROM_NHWCS = {"NHWCS": (0, 1, 2, 3, 4), "SHWNC": (4, 1, 2, 0, 3), "SWHNC": (4, 2, 1, 0, 3)}

__all__ = [
    "LAYOUTS",
    "LAYOUT_AFTER",
    "METHODS",
    "hermite_gaussian_basis",
    "kernel_size_for",
    "scale_conv2d",
    "scale_ladder",
    "scale_lifting_conv2d",
    "scale_pool",
    "to_layout",
    "to_nhwcs",
]


def _check_layout(layout: str) -> None:
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")


def to_nhwcs(y: jax.Array, layout: str) -> jax.Array:
    """A map in ``layout`` (``LAYOUTS``) as [N, H, W, C, S]."""
    _check_layout(layout)
    return y if layout == "NHWCS" else jnp.transpose(y, _TO_NHWCS[layout])


def to_layout(y: jax.Array, layout: str) -> jax.Array:
    """A [N, H, W, C, S] map in ``layout`` (``LAYOUTS``); the inverse of ``to_nhwcs``."""
    _check_layout(layout)
    return y if layout == "NHWCS" else jnp.transpose(y, _FROM_NHWCS[layout])


def scale_ladder(sigma0: float, ratio: float, num_scales: int) -> tuple[float, ...]:
    """``(sigma0, sigma0 * ratio, ..., sigma0 * ratio^(S-1))``."""
    if not sigma0 > 0 or not ratio > 0:
        raise ValueError(f"sigma0 and ratio must be > 0, got sigma0={sigma0}, ratio={ratio}")
    if not isinstance(num_scales, int) or num_scales < 1:
        raise ValueError(f"num_scales must be a positive int, got {num_scales!r}")
    return tuple(float(sigma0 * ratio**s) for s in range(num_scales))


def _hermite(n: int, t: np.ndarray) -> np.ndarray:
    """Physicists' Hermite polynomial H_n(t) by its three-term recurrence."""
    prev, cur = np.ones_like(t), 2 * t
    if n == 0:
        return prev
    for k in range(1, n):
        prev, cur = cur, 2 * t * cur - 2 * k * prev
    return cur


def kernel_size_for(sigma: float, order: int = 2, *, tol: float = 0.01) -> int:
    """The smallest odd kernel size whose window holds the basis at ``sigma`` up to ``tol``.

    The basis functions are products of 1-D factors ``H_n(t) exp(-t^2 / 2)``, ``t = u / sigma``,
    ``n <= order``. A K x K window keeps ``|u| <= K / 2`` pixels; K is the smallest odd size
    for which every factor keeps all but ``tol`` of its L2 norm (the fraction outside is
    ``sqrt(int_{|t| > K / (2 sigma)} H_n^2 e^{-t^2} / int H_n^2 e^{-t^2})``). The rule of
    thumb "about 6 sigma" is this rule for the Gaussian alone (order 0); the higher Hermite
    factors reach further: at order 2 it asks for about 8 sigma.

    Args:
      sigma: the coarsest scale of the ladder (pixels, > 0).
      order: maximal Hermite degree, as in ``hermite_gaussian_basis``.
      tol: largest fraction of a factor's L2 norm that may fall outside the window.

    Returns:
      Odd int K.

    >>> kernel_size_for(1.6, order=2), kernel_size_for(1.6, order=0)
    (13, 9)
    """
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma!r}")
    if not isinstance(order, int) or order < 0:
        raise ValueError(f"order must be a non-negative int, got {order!r}")
    if not 0 < tol < 1:
        raise ValueError(f"tol must be in (0, 1), got {tol!r}")
    t = np.linspace(0.0, 12.0 + 2.0 * order, 200_001)  # the factors are even in t
    dt = t[1] - t[0]
    density = np.stack([_hermite(n, t) ** 2 * np.exp(-(t**2)) for n in range(order + 1)])
    beyond = np.cumsum(density[:, ::-1], axis=1)[:, ::-1] * dt  # [n, i]: integral over t >= t_i
    fraction = np.sqrt(beyond / beyond[:, :1])
    size = 1
    while fraction[:, min(np.searchsorted(t, size / (2 * sigma)), len(t) - 1)].max() > tol:
        size += 2
    return size


def hermite_gaussian_basis(size: int, scales: Sequence[float], order: int = 2) -> np.ndarray:
    """The fixed multi-scale filter basis.

    Basis function ``(a, b)`` with ``a + b <= order`` at scale ``sigma`` is
    ``H_a(u / sigma) H_b(v / sigma) exp(-(u^2 + v^2) / (2 sigma^2)) / sigma^2`` on the
    ``size x size`` grid centred at 0 (u down, v right), scaled so that it has unit L2 norm at
    the finest scale; the ``1 / sigma^2`` factor keeps responses comparable across scales.

    Args:
      size: odd kernel size K.
      scales: the S scales (sigma, in pixels).
      order: maximal total polynomial degree; B = (order + 1)(order + 2) / 2 functions.

    Returns:
      [S, K, K, B] float32 numpy array.
    """
    if not isinstance(size, int) or size < 1 or size % 2 == 0:
        raise ValueError(f"size must be a positive odd int, got {size!r}")
    if not isinstance(order, int) or order < 0:
        raise ValueError(f"order must be a non-negative int, got {order!r}")
    if len(scales) < 1 or min(scales) <= 0:
        raise ValueError(f"scales must be a non-empty sequence of positive floats, got {scales!r}")
    u = np.arange(size, dtype=np.float64) - size // 2
    degrees = [(a, d - a) for d in range(order + 1) for a in range(d + 1)]
    per_scale = []
    for sigma in scales:
        t = u / sigma
        g = np.exp(-0.5 * t**2)
        per_scale.append(np.stack(
            [np.outer(_hermite(a, t) * g, _hermite(b, t) * g) / sigma**2 for a, b in degrees],
            axis=-1))
    basis = np.stack(per_scale)  # [S, K, K, B]
    norms = np.sqrt(np.sum(basis[0] ** 2, axis=(0, 1)))
    return (basis / norms).astype(np.float32)


def _check_basis(basis, num_scales=None):
    if jnp.ndim(basis) != 4 or basis.shape[1] != basis.shape[2]:
        raise ValueError(f"basis must be [S, K, K, B], got shape {jnp.shape(basis)}")
    if num_scales is not None and basis.shape[0] != num_scales:
        raise ValueError(f"basis has {basis.shape[0]} scales but the input has {num_scales}")


def _rank_one_factors(basis) -> tuple[np.ndarray, np.ndarray] | None:
    """([S, K, B], [S, K, B]) with ``basis[s, :, :, b] = outer(u[s, :, b], v[s, :, b])``.

    None when ``basis`` is traced (no values to factor) or a function is not rank one to
    float32 accuracy.
    """
    if isinstance(basis, jax.core.Tracer):
        return None
    arr = np.asarray(basis, np.float64)
    mats = np.moveaxis(arr, -1, 1)  # [S, B, K, K]
    left, sing, right = np.linalg.svd(mats)
    if np.any(sing[..., 1] > 1e-6 * np.maximum(sing[..., 0], 1e-30)):
        return None
    u = left[..., :, 0] * sing[..., :1]  # [S, B, K]
    v = right[..., 0, :]
    return np.moveaxis(u, 1, 2), np.moveaxis(v, 1, 2)


def _band_matrices(factors: np.ndarray, size: int, padding: str) -> np.ndarray:
    """[S, B, size', size] matrices ``T`` with ``T @ x`` the 1-D correlation of ``x`` with
    each factor [S, K, B] under ``padding`` (as ``ops.conv2d``; "circular" wraps)."""
    k = factors.shape[1]
    ((lo, hi),) = padding_amounts((size,), (k,), padding, (1,))
    out_size = size + lo + hi - k + 1
    band = np.zeros((factors.shape[0], factors.shape[2], out_size, size))
    for i in range(out_size):
        for t in range(k):
            h = i + t - lo
            if padding == "circular":
                h %= size
            elif not 0 <= h < size:
                continue
            band[:, :, i, h] += factors[:, t, :]
    return band


def _separable(x, weights, factors, padding, precision, lifted: bool, swapped: bool):
    """The layer as two banded passes and one mixing product, scale-major.

    Args:
      x: [S, A, B, N, C] (``lifted``) or [A, B, N, C] (the same input for every scale), where
        (A, B) is (H, W), or (W, H) when ``swapped``.
      weights: [C, O, F] (F basis functions).
      factors: the rank-one factors of the basis (``_rank_one_factors``).

    Returns:
      [S, B', A', N, O]: the spatial axes exchanged.
    """
    along_a, along_b = (factors[1], factors[0]) if swapped else factors
    first = jnp.asarray(_band_matrices(along_a, x.shape[-4], padding), x.dtype)
    second = jnp.asarray(_band_matrices(along_b, x.shape[-3], padding), x.dtype)
    # along A: [S, F, A', A] x [(S,) A, B, N, C] -> [S, F, A', B, N, C] (F: basis functions)
    spec = "sfia,sabnc->sfibnc" if lifted else "sfia,abnc->sfibnc"
    t = jnp.einsum(spec, first, x, precision=precision)
    # along B, per basis function: -> [S, F, B', A', N, C]
    t = jnp.einsum("sfjb,sfibnc->sfjinc", second, t, precision=precision)
    # mix the responses by the coefficients: -> [S, B', A', N, O]
    return jnp.einsum("sfjinc,cof->sjino", t, weights, precision=precision)


def _pick_method(method: str, basis):
    """(method, factors or None) for ``method`` and ``basis``."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "bank":
        return "bank", None
    factors = _rank_one_factors(basis)
    if factors is None and method == "separable":
        raise ValueError("method='separable' needs a concrete basis whose functions are rank "
                         "one (as hermite_gaussian_basis's); use 'bank' or 'auto'")
    return ("separable", factors) if factors is not None else ("bank", None)


def scale_lifting_conv2d(x: jax.Array, weights: jax.Array, basis: jax.Array, *,
                         padding: str = "same", impl: str = "auto", precision=None,
                         method: str = "auto", layout: str = "NHWCS") -> jax.Array:
    """Z2 -> scales: correlates the image with the same filter drawn at every scale.

    Args:
      x: [N, H, W, C] images.
      weights: [C, O, B] basis coefficients.
      basis: [S, K, K, B] from ``hermite_gaussian_basis``.
      padding, impl, precision: as ``ops.conv2d`` (stride 1); ``impl`` matters for the
        "bank" method only.
      method: "auto", "separable" or "bank" (module docstring).
      layout: "NHWCS", or "SHWNC" to start a scale-major chain (module docstring).

    Returns:
      [N, H', W', O, S], or [S, W', H', N, O] ("SWHNC") for ``layout="SHWNC"``.
    """
    _check_basis(basis)
    if layout not in ("NHWCS", "SHWNC"):
        raise ValueError(f"layout of a lifting conv must be 'NHWCS' or 'SHWNC' (its input is "
                         f"[N, H, W, C]), got {layout!r}")
    if jnp.ndim(weights) != 3 or weights.shape[-1] != basis.shape[-1]:
        raise ValueError(f"weights must be [C, O, {basis.shape[-1]}], got {jnp.shape(weights)}")
    method, factors = _pick_method(method, basis)
    if method == "separable":
        padding_amounts(x.shape[1:3], basis.shape[1:3], padding, (1, 1))  # checks padding
        out = _separable(jnp.transpose(x, (1, 2, 0, 3)), weights, factors, padding,
                         precision, lifted=False, swapped=False)  # SWHNC
        return out if layout == "SHWNC" else to_nhwcs(out, "SWHNC")
    s, k = basis.shape[0], basis.shape[1]
    bank = jnp.einsum("sijb,cob->ijcos", basis, weights,
                      precision=precision)  # [K, K, C, O, S]
    out = conv2d(x, bank.reshape(k, k, weights.shape[0], -1), padding=padding, impl=impl,
                 precision=precision)
    return to_layout(out.reshape(*out.shape[:3], weights.shape[1], s), LAYOUT_AFTER[layout])


def scale_conv2d(y: jax.Array, weights: jax.Array, basis: jax.Array, *,
                 padding: str = "same", impl: str = "auto", precision=None,
                 method: str = "auto", layout: str = "NHWCS") -> jax.Array:
    """Scales -> scales: output scale s mixes input scales s .. s + J - 1 with filters at s.

    ``out[..., o, s] = sum_{j, c} (y[..., c, s + j] ⋆ sum_b w[c, j, o, b] basis[s, ..., b])``;
    input scales beyond the ladder count as zero.

    Args:
      y: [N, H, W, C, S] map on the scale ladder, or scale-major as ``layout`` says.
      weights: [C, J, O, B] coefficients; J is the number of scales mixed (1 = none).
      basis: [S, K, K, B].
      padding, impl, precision: as ``ops.conv2d`` (stride 1); ``impl`` matters for the
        "bank" method only.
      method: "auto", "separable" or "bank" (module docstring).
      layout: ``y``'s layout: "NHWCS", "SHWNC" or "SWHNC" (module docstring).

    Returns:
      [N, H', W', O, S]; for a scale-major ``y``, the other scale-major layout ("SHWNC" ->
      [S, W', H', N, O], "SWHNC" -> [S, H', W', N, O]).
    """
    _check_layout(layout)
    if jnp.ndim(y) != 5:
        raise ValueError(f"y must be 5-D ({layout}), got shape {jnp.shape(y)}")
    major = layout != "NHWCS"
    _check_basis(basis, y.shape[0] if major else y.shape[-1])
    if jnp.ndim(weights) != 4 or weights.shape[-1] != basis.shape[-1]:
        raise ValueError(f"weights must be [C, J, O, {basis.shape[-1]}], got {jnp.shape(weights)}")
    c, span, o, _ = weights.shape
    s, k = basis.shape[0], basis.shape[1]
    method, factors = _pick_method(method, basis)
    if method == "separable":
        spatial = y.shape[1:3]
        padding_amounts(spatial, basis.shape[1:3], padding, (1, 1))  # checks padding
        ym = y if major else to_layout(y, "SHWNC")
        # input scale s + j beside scale s as channel (c, j); beyond the ladder: zeros
        shifted = [jnp.pad(ym[j:], ((0, j),) + ((0, 0),) * 4) for j in range(span)]
        stacked = jnp.stack(shifted, axis=-1).reshape(*ym.shape[:4], c * span)
        out = _separable(stacked, weights.reshape(c * span, o, -1), factors, padding,
                         precision, lifted=True, swapped=layout == "SWHNC")
        return out if major else to_nhwcs(out, "SWHNC")
    # bank[:, :, c, t, o, s] holds the filter from input scale t to output scale s (t - s < J)
    filters = jnp.einsum("sxyb,cjob->xycjos", basis, weights,
                         precision=precision)  # [K, K, C, J, O, S]
    bank = jnp.zeros((k, k, c, s, o, s), filters.dtype)
    for out_s in range(s):
        for j in range(min(span, s - out_s)):
            bank = bank.at[:, :, :, out_s + j, :, out_s].set(filters[:, :, :, j, :, out_s])
    yn = to_nhwcs(y, layout)
    out = conv2d(yn.reshape(*yn.shape[:3], c * s), bank.reshape(k, k, c * s, o * s),
                 padding=padding, impl=impl, precision=precision)
    return to_layout(out.reshape(*out.shape[:3], o, s), LAYOUT_AFTER[layout])


def scale_pool(y: jax.Array, reduce: str = "max") -> jax.Array:
    """Reduces the scale axis: [N, H, W, C, S] -> [N, H, W, C] (approximately scale-invariant)."""
    return group_pool(y, reduce)
