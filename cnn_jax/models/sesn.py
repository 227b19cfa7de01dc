"""Scale-equivariant CNN ("sesn", after Sosnovik et al., 2020).

Scale lifting conv, then scale convs over a ladder of S scales (``ops.scale``), then a pool
over the scale axis, global average pooling and a dense head. No spatial pooling by default,
so every stage keeps the input grid and the zoom acts on it about the same centre. The
equivariance is approximate (``ops.scale``); the equivariance report measures it.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax

from cnn_jax.layers.conv import activation
from cnn_jax.layers.scale import ScaleConv, ScaleLiftingConv
from cnn_jax.models.gcnn import invariant_head, run_stages
from cnn_jax.models.registry import register
from cnn_jax.ops import scale as scale_ops


@register("sesn")
class SESN(nn.Module):
    """Scale-equivariant CNN.

    Attributes:
      features: filters per stage (the first is the lifting conv).
      num_scales, sigma0, ratio: the scale ladder ``sigma0 * ratio^s``.
      kernel_size: odd filter window; None (default) derives it from the coarsest scale and
        ``order`` (``ops.scale.kernel_size_for``): 13 for the default ladder (sigma 0.8, 1.13,
        1.6) at order 2. The old default 9 truncated the sigma = 1.6 filters. Zoom by sqrt(2)
        of smooth 64x64 inputs (``equivariance_report.smooth_images``, sigma 4; random
        parameters; median over 8 seeds of the relative error of scale s of f(g x) against
        the zoomed scale s - 1 of f(x), central disk of radius 16):

        ========  ===============  ===============  ===============  ===============
        K         lift, scale 1    lift, scale 2    sconv_2, sc. 1   sconv_2, sc. 2
        ========  ===============  ===============  ===============  ===============
        9 (old)   1.2%             5.1%             1.4%             9.1%
        13 (new)  1.2%             1.2%             1.4%             1.3%
        ========  ===============  ===============  ===============  ===============

        What remains (about 1%) is the same at every step: the zoom's interpolation, not the
        window (K = 11 leaves 2.0% at sconv_2, scale 2).
      order: Hermite degree of the filter basis.
      scale_span: neighbouring scales mixed by the scale convs.
      activation: pointwise activation name.
      pool: "max", "avg" or "none": spatial pooling after every stage but the last.
      scale_pool: "max" or "mean" over scales before the head.
      num_classes: logits.
      conv_impl: ``ops.conv2d`` implementation (of the "bank" method).
      scale_method: how the scale convs are computed: "auto", "separable" or "bank"
        (``ops.scale``; the same values up to rounding).
      precision: precision of every dot and conv ("default", "high", "highest"; None: JAX's
        default, see ``TrainConfig.precision``).
      scale_major: keep the maps scale-major inside the network (``ops.scale``: layouts
        "SHWNC" and "SWHNC", alternating), so that no layer transposes them; the same
        values and parameters as False (the [N, H, W, C, S] layout throughout), and faster:
        a CPU training epoch of experiments/equivariance_practice.flags's SESN took 0.80-0.83x
        the time (benchmark.py --models=sesn on 10k Fashion-MNIST images, 2 cores: 5.68 ->
        4.55 s and 5.80 -> 4.80 s). The features are [N, h, w, F, S] either way.

    ``__call__``: [N, H, W, C] -> (logits, features {"lift": [N, h, w, F, S], "sconv_2", ...,
    "scale_pool": [N, h, w, F], "gap": [N, F], "logits"}).
    """

    features: Sequence[int] = (8, 16)
    num_scales: int = 3
    sigma0: float = 0.8
    ratio: float = 2**0.5
    kernel_size: int | None = None
    order: int = 2
    scale_span: int = 1
    activation: str = "relu"
    pool: str = "none"
    pool_window: int = 2
    scale_pool: str = "max"
    num_classes: int = 10
    conv_impl: str = "auto"
    scale_method: str = "auto"
    precision: str | None = None
    scale_major: bool = True

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False):
        if not self.features:
            raise ValueError(f"features must name at least one stage, got {self.features!r}")
        ladder = dict(num_scales=self.num_scales, sigma0=self.sigma0, ratio=self.ratio,
                      kernel_size=self.kernel_size, order=self.order, impl=self.conv_impl,
                      precision=self.precision, method=self.scale_method)
        # Scale-major maps alternate between two layouts (ops.scale); the features are
        # returned [N, h, w, F, S] whatever the layout inside.
        layout = "SHWNC" if self.scale_major else "NHWCS"
        convs, layouts = [], {}
        for i, f in enumerate(self.features, 1):
            name = "lift" if i == 1 else f"sconv_{i}"
            convs.append((name, ScaleLiftingConv(f, name=name, layout=layout, **ladder)
                          if i == 1 else
                          ScaleConv(f, scale_span=self.scale_span, name=name, layout=layout,
                                    **ladder)))
            layout = scale_ops.LAYOUT_AFTER[layout]
            layouts[name] = layouts[f"pool_{i}"] = layout
        # pool_group_map folds the two trailing axes: (C, S), or (N, C) scale-major
        x, maps = run_stages(x, convs, activation(self.activation), self.pool,
                             self.pool_window)
        features = {k: scale_ops.to_nhwcs(v, layouts[k]) for k, v in maps.items()}
        return invariant_head(scale_ops.to_nhwcs(x, layout), features, self.scale_pool,
                              "scale_pool", self.num_classes, self.precision)

    def scale_reach(self) -> dict[str, int]:
        """{stage: how many scales above its own an output scale reads} for the scale maps.

        Each scale conv reads ``scale_span`` neighbouring scales, so after ``i`` of them an
        output scale ``s`` depends on the input at scales ``s .. s + i * (scale_span - 1)``
        (spatial pools keep it). ``equivariance.sweep(..., scale_reach=...)`` leaves out the
        scales where that range leaves the ladder.

        >>> SESN(features=(4, 4, 4), scale_span=2, pool="max").scale_reach()
        {'lift': 0, 'pool_1': 0, 'sconv_2': 1, 'pool_2': 1, 'sconv_3': 2}
        """
        reach = {}
        for i in range(1, len(self.features) + 1):
            reach["lift" if i == 1 else f"sconv_{i}"] = (i - 1) * (self.scale_span - 1)
            if self.pool != "none" and i < len(self.features):
                reach[f"pool_{i}"] = (i - 1) * (self.scale_span - 1)
        return reach
