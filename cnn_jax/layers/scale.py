"""Scale-equivariant convolution layers (after SESN, Sosnovik et al. 2020) over ``ops.scale``."""

from __future__ import annotations

import functools
from collections.abc import Callable

import flax.linen as nn
import jax
import numpy as np

from cnn_jax.ops import scale as scale_ops


def _coefficient_init(fan_in_axes):
    """Normal coefficients with variance 1 / fan-in (the basis functions have unit norm)."""
    return nn.initializers.variance_scaling(1.0, "fan_in", "normal", in_axis=fan_in_axes,
                                            out_axis=-2)


@functools.lru_cache(maxsize=64)
def _ladder_basis(sigma0: float, ratio: float, num_scales: int, size: int | None,
                  order: int) -> np.ndarray:
    """The read-only [S, K, K, B] basis of a ladder (computed once per setting)."""
    scales = scale_ops.scale_ladder(sigma0, ratio, num_scales)
    if size is None:
        size = scale_ops.kernel_size_for(scales[-1], order)
    basis = scale_ops.hermite_gaussian_basis(size, scales, order)
    basis.flags.writeable = False
    return basis


class _ScaleBasis(nn.Module):
    """Shared attributes: the ladder ``sigma0 * ratio^s`` and the Hermite-Gaussian basis."""

    features: int
    num_scales: int = 3
    sigma0: float = 1.0
    ratio: float = 2**0.5
    kernel_size: int | None = None
    order: int = 2
    padding: str = "same"
    use_bias: bool = True
    impl: str = "auto"
    precision: str | None = None
    method: str = "auto"
    layout: str = "NHWCS"

    def _add_bias(self, y: jax.Array) -> jax.Array:
        """One bias per filter, shared over scales (the parameter is [O, 1] in every layout)."""
        if not self.use_bias:
            return y
        bias = self.param("bias", nn.initializers.zeros, (self.features, 1))
        return y + (bias if self.layout == "NHWCS" else bias[:, 0])

    def basis(self) -> np.ndarray:
        """[S, K, K, B] float32, a numpy constant: the ops factor it when they trace."""
        return _ladder_basis(float(self.sigma0), float(self.ratio), self.num_scales,
                             self.kernel_size, self.order)


class ScaleLiftingConv(_ScaleBasis):
    """Z2 -> scales: the same learned filter drawn at every scale of the ladder.

    Attributes:
      features: filters O.
      num_scales: S; sigma0, ratio: the ladder ``sigma0 * ratio^s``.
      kernel_size: odd K; None (default) derives it from the coarsest scale and the order
        (``ops.scale.kernel_size_for``: 13 for the ladder 0.8 * sqrt(2)^s, s < 3, order 2).
        A smaller window truncates the coarsest filters and costs equivariance there.
      order: Hermite degree of the basis (B = (order+1)(order+2)/2 functions).
      padding, impl, precision: as ``ops.conv2d`` (precision None: JAX's default); use_bias:
        one bias per filter, shared over scales.
      method: "auto", "separable" or "bank" (``ops.scale``: how the layer is computed).
      layout: "NHWCS", or "SHWNC" to start a scale-major chain (``ops.scale``).

    Input [N, H, W, C] -> output [N, H, W, O, S] ("SHWNC": [S, W, H, N, O]); parameter
    "weights" [C, O, B].
    """

    weights_init: Callable = _coefficient_init((0, 2))

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        basis = self.basis()
        w = self.param("weights", self.weights_init, (x.shape[-1], self.features, basis.shape[-1]))
        y = scale_ops.scale_lifting_conv2d(x, w, basis, padding=self.padding, impl=self.impl,
                                           precision=self.precision, method=self.method,
                                           layout=self.layout)
        return self._add_bias(y)


class ScaleConv(_ScaleBasis):
    """Scales -> scales: each output scale mixes ``scale_span`` neighbouring input scales.

    Attributes: as ``ScaleLiftingConv``, plus ``scale_span`` (J, 1 = no mixing); ``layout``
    is the input's: "NHWCS", "SHWNC" or "SWHNC" (``ops.scale``).

    Input [N, H, W, C, S] -> output [N, H, W, O, S]; scale-major: [S, H, W, N, C] ->
    [S, W, H, N, O] and [S, W, H, N, C] -> [S, H, W, N, O]. Parameter "weights" [C, J, O, B].
    """

    scale_span: int = 1
    weights_init: Callable = _coefficient_init((0, 1, 3))

    @nn.compact
    def __call__(self, y: jax.Array) -> jax.Array:
        if self.layout not in scale_ops.LAYOUTS:
            raise ValueError(f"layout must be one of {scale_ops.LAYOUTS}, got {self.layout!r}")
        major = self.layout != "NHWCS"
        if y.ndim != 5 or y.shape[0 if major else -1] != self.num_scales:
            want = (f"[{self.num_scales}, {self.layout[1]}, {self.layout[2]}, N, C]" if major
                    else f"[N, H, W, C, {self.num_scales}]")
            raise ValueError(f"input must be {want} (layout {self.layout}), got {y.shape}")
        basis = self.basis()
        w = self.param("weights", self.weights_init,
                       (y.shape[4 if major else 3], self.scale_span, self.features,
                        basis.shape[-1]))
        out = scale_ops.scale_conv2d(y, w, basis, padding=self.padding, impl=self.impl,
                                     precision=self.precision, method=self.method,
                                     layout=self.layout)
        return self._add_bias(out)
