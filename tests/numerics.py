"""Float tolerances that say where they come from.

XLA:CPU emits different code for each instruction set (AVX-512, AVX2, AVX, SSE4.2): it
orders additions differently, fuses multiply-adds or not, vectorises reductions in other
widths. So a float32 result moves by a few units in the last place from one CPU to the next
(``XLA_FLAGS=--xla_cpu_max_isa=AVX2`` shows it on one machine). A test may therefore compare
floats exactly only where the computation is exact by construction -- integer-valued data
whose sums stay below 2**24, permutations, copies, rolls, reruns on the same machine -- and
must elsewhere allow for the rounding error of the computation, never for the rounding one
particular CPU happened to do.

The bound used here is standard forward error analysis (Higham, *Accuracy and Stability of
Numerical Algorithms*, 2nd ed., ch. 2-3): each floating-point operation rounds its exact
result ``v`` with an error of at most ``u |v|`` (``u = eps / 2``). A value that goes through
``ops`` roundings, none of them on an intermediate larger than ``scale`` in magnitude, is
therefore off by at most about ``ops * u * scale``. Comparing two computations, each with
its own roundings, doubles that; the bound below, ``ops * eps * scale``, is the sum of both
sides (count the roundings of the longer side, or of both sides added up, in ``ops``):

- a sum or dot product of ``n`` terms: ``ops = n``, and ``scale`` = the largest sum of
  ``|terms|`` (a proven bound for every summation order, hence for every CPU);
- a convolution with a ``KH x KW x C`` window: ``ops = KH * KW * C`` per layer;
- an elementwise chain (a mean of four values: three adds and one scaling): count them;
- a reference computed in float64 adds nothing; one in float32 adds its own roundings;
- a gradient roughly doubles the count of the forward pass.

``scale`` defaults to the largest ``|desired|``. That is right when the values do not cancel;
where they do (a sum of random terms near zero), pass the magnitude of the terms. The bound
is absolute for the whole array, so elements near zero get the same allowance as the
largest ones: that is the floor near zero a purely relative test lacks. Elements larger than
``scale`` get an additional ``ops * eps`` relative allowance.
"""

from __future__ import annotations

import numpy as np

__all__ = ["assert_close", "eps", "interpolation_ops", "tolerance"]


def eps(dtype) -> float:
    """Machine epsilon (spacing of floats at 1.0) of a float ``dtype``: 2**-23 for float32."""
    return float(np.finfo(np.dtype(dtype)).eps)


def tolerance(dtype, ops: int | float, scale: float = 1.0) -> float:
    """Absolute bound ``ops * eps(dtype) * scale`` on the rounding error of a result.

    Args:
      dtype: the float type the computation runs in (the lower precision of the two sides).
      ops: the number of roundings on the longest path to one output (see the module doc).
      scale: magnitude of the values rounded along the way (1.0 for a relative bound).

    Returns:
      The bound, a float >= 0.
    """
    if not ops > 0:
        raise ValueError(f"ops must be > 0, got {ops!r}")
    if not scale >= 0:
        raise ValueError(f"scale must be >= 0, got {scale!r}")
    return ops * eps(dtype) * scale


def interpolation_ops(size: int) -> int:
    """``ops`` for one interpolated resampling (shift, rotation, zoom) of a ``size``-pixel grid.

    With ``scale = max|x|``: the sample position takes ~4 float32 roundings on coordinates up
    to ``size``, so it may be off by ``4 eps size`` pixels, which moves a linearly interpolated
    value by at most that times the step between neighbours (``<= 2 max|x|``): ``8 size``.
    The interpolation itself (two weights per axis, their normalisation, the products and
    sums of the taps): ~12 more.
    """
    return 8 * size + 12


def _working_dtype(*arrays) -> np.dtype:
    """The least precise float dtype among ``arrays`` (float32 vs a float64 reference)."""
    floats = [a.dtype for a in arrays if np.issubdtype(a.dtype, np.floating)]
    if not floats:
        raise ValueError("neither side is a float array: compare integers exactly "
                         "(np.testing.assert_array_equal)")
    return max(floats, key=lambda d: np.finfo(d).eps)


def assert_close(actual, desired, *, ops: int | float, scale: float | None = None,
                 dtype=None, err_msg: str = "") -> float:
    """Asserts ``|actual - desired| <= ops * eps * (scale + |desired|)`` element by element.

    Args:
      actual: array-like, any shape broadcastable against ``desired``.
      desired: the reference (exact, float64, or another float32 computation).
      ops: roundings on the longest path to one output, both sides counted (module doc).
      scale: magnitude of the intermediate values; default the largest ``|desired|``.
      dtype: the working float type; default the less precise float dtype of the two sides.
      err_msg: prefixed to the failure message.

    Returns:
      The absolute bound used (so a test can also state the margin of a negative control).
    """
    actual, desired = np.asarray(actual), np.asarray(desired)
    dtype = np.dtype(dtype) if dtype is not None else _working_dtype(actual, desired)
    if scale is None:
        scale = float(np.max(np.abs(desired), initial=0.0))
        if scale == 0.0:
            raise ValueError("desired is all zeros: pass scale= (the magnitude of the values "
                             "whose rounding leaves the residue)")
    atol = tolerance(dtype, ops, scale)
    rtol = tolerance(dtype, ops)
    header = f"bound = {ops} ops x eps({dtype.name}) x scale {scale:.3g} = {atol:.3g}"
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=atol,
                               err_msg=f"{err_msg} ({header})".strip())
    return atol
