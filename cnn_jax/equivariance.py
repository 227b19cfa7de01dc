"""Measure equivariance: compare ``f(g x)`` with ``g' f(x)``, per stage and over magnitudes.

The two sides are computed apart from any judgement: ``equivariance_test`` returns the pair,
``relative_error`` measures ``||a - b|| / ||b||`` (optionally on a central mask that leaves out
the border, where padding and interpolation break any symmetry), ``assert_equivariant``
compares. Invariance is the case ``g_out = identity``.

``sweep`` transforms the input by a family of group elements of growing magnitude (shifts in
pixels, rotations in degrees, zoom factors) and, for a model returning
``(logits, features)``, returns one error curve per stage. Each stage's output action is
chosen from its shape (``stage_action``):

* [N, D] (logits, dense features): identity, so the curve measures invariance;
* [N, h, w, C]: the same transform on the stage's grid; shifts are rescaled by ``h / H``
  (a sub-pixel shift where that is fractional);
* [N, h, w, C, G]: the grid transform, and on the group axis the nearest group element:
  ``round(angle / 90)`` quarter turns for p4 / p4m, ``round(log(factor) / log(ratio))``
  scale steps for scale maps (``group="scale"``; under zooms, the scales shifted off the
  finite ladder, and those whose receptive field over scales leaves it, are left out of
  the comparison: see ``sweep``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from cnn_jax import transforms

__all__ = [
    "KINDS",
    "as_stages",
    "assert_equivariant",
    "central_mask",
    "equivariance_test",
    "input_action",
    "random_parameters",
    "relative_error",
    "stage_action",
    "sweep",
]

KINDS = ("shift", "rotate", "scale")


def equivariance_test(f: Callable, x, g_in: Callable, g_out: Callable) -> tuple:
    """Returns ``(f(g_in(x)), g_out(f(x)))``; equal when ``f`` is equivariant.

    Args:
      f: the function under test (a layer or model with parameters bound).
      x: its input, e.g. [N, H, W, C].
      g_in: the transform of the input.
      g_out: the transform expected on the output (``lambda y: y`` tests invariance).
    """
    return f(g_in(x)), g_out(f(x))


def central_mask(height: int, width: int, *, radius: float | None = None,
                 border: int | None = None) -> np.ndarray:
    """[H, W] bool mask of the centre: a disk of ``radius`` pixels, or all but ``border`` px.

    The disk is centred at ``((H - 1) / 2, (W - 1) / 2)``, the centre that rotations and zooms
    in ``transforms`` fix. Give exactly one of ``radius`` and ``border``.

    >>> central_mask(5, 5, radius=1.0).astype(int).tolist()[1:4]
    [[0, 0, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 0, 0]]
    """
    if (radius is None) == (border is None):
        raise ValueError(f"give exactly one of radius and border, got radius={radius!r}, "
                         f"border={border!r}")
    if height < 1 or width < 1:
        raise ValueError(f"height and width must be >= 1, got {(height, width)}")
    if border is not None:
        if border < 0 or 2 * border >= min(height, width):
            raise ValueError(f"border must be in [0, {(min(height, width) - 1) // 2}] for a "
                             f"{height}x{width} grid, got {border}")
        mask = np.zeros((height, width), bool)
        mask[border: height - border, border: width - border] = True
        return mask
    if not radius > 0:
        raise ValueError(f"radius must be > 0, got {radius!r}")
    i = np.arange(height)[:, None] - (height - 1) / 2
    j = np.arange(width)[None, :] - (width - 1) / 2
    return i**2 + j**2 <= radius**2


def _masked(a, mask):
    if mask is None:
        return a
    mask = jnp.asarray(mask)
    if a.ndim < 3 or a.shape[1:3] != mask.shape:
        raise ValueError(f"mask of shape {mask.shape} does not fit the grid of an array of "
                         f"shape {a.shape} ([N, H, W, ...])")
    return a * mask.reshape(1, *mask.shape, *([1] * (a.ndim - 3))).astype(a.dtype)


def relative_error(a, b, mask=None) -> jax.Array:
    """``||a - b|| / ||b||`` (Frobenius), on the ``mask`` [H, W] of [N, H, W, ...] arrays.

    Returns 0 when both are zero and ``inf`` when only ``b`` is.
    """
    a, b = jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {a.shape} and {b.shape}")
    diff = jnp.linalg.norm(_masked(a - b, mask).ravel())
    ref = jnp.linalg.norm(_masked(b, mask).ravel())
    safe = jnp.where(ref > 0, ref, 1.0)
    return jnp.where(ref > 0, diff / safe, jnp.where(diff > 0, jnp.inf, 0.0))


def assert_equivariant(a, b, *, tol: float = 1e-5, mask=None, what: str = "f") -> float:
    """Raises ``AssertionError`` unless ``relative_error(a, b, mask) <= tol``; returns the error.

    Args:
      a, b: the pair from ``equivariance_test``.
      tol: largest relative error accepted.
      mask: optional [H, W] central mask.
      what: name used in the message.
    """
    err = float(relative_error(a, b, mask))
    if not err <= tol:
        raise AssertionError(f"{what} is not equivariant: relative error {err:.3g} > {tol:.3g}")
    return err


def random_parameters(module, input_shape: Sequence[int], seed: int = 0):
    """Random variables for ``module`` without compiling its ``init`` (fast on a busy CPU).

    Shapes come from ``jax.eval_shape(module.init, ...)``. Biases ("bias" leaves) and other
    vectors are zero, as the layers' own initialisers make them; every other array (kernels,
    basis coefficients) is standard normal over sqrt(the product of all but its last axis),
    drawn from ``numpy.random.default_rng(seed)``. With zero biases a ReLU network is
    positively homogeneous in each layer's weights, so relative errors do not depend on the
    weight scale (e.g. a locally connected kernel's position axes, which enter that product).

    Args:
      module: a Flax module taking one [N, H, W, C] array.
      input_shape: the shape it will be applied to.
      seed: numpy seed.

    Returns:
      The variables pytree for ``module.apply``.
    """
    shapes = jax.eval_shape(module.init, jax.random.key(0), jnp.zeros(input_shape, jnp.float32))
    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        if len(leaf.shape) < 2 or str(getattr(path[-1], "key", "")) == "bias":
            return jnp.zeros(leaf.shape, leaf.dtype)
        std = 1 / np.sqrt(np.prod(leaf.shape[:-1]))
        return jnp.asarray(rng.standard_normal(leaf.shape) * std, leaf.dtype)

    return jax.tree_util.tree_map_with_path(draw, shapes)


# ----------------------------------------------------------------------------- sweeps


def _check_kind(kind):
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def _quarter_turns(angle: float) -> int | None:
    k = angle / 90.0
    return int(round(k)) % 4 if abs(k - round(k)) < 1e-9 else None


def input_action(kind: str, magnitude: float) -> Callable:
    """The transform of an [N, H, W, C] input for one magnitude of a sweep.

    "shift": circular shift by ``magnitude`` pixels down and right (sub-pixel if
    fractional); "rotate": ``magnitude`` degrees (exact ``rotate90`` for quarter turns);
    "scale": zoom by ``magnitude`` about the centre.
    """
    _check_kind(kind)
    if kind == "shift":
        if float(magnitude).is_integer():
            return lambda x: transforms.shift(x, int(magnitude), int(magnitude))
        return lambda x: transforms.subpixel_shift(x, magnitude, magnitude, mode="circular")
    if kind == "rotate":
        k = _quarter_turns(magnitude)
        if k is not None:
            return lambda x: transforms.rotate90(x, k)
        return lambda x: transforms.rotate(x, magnitude)
    return lambda x: transforms.scale(x, magnitude)


def stage_action(kind: str, magnitude: float, shape: Sequence[int], input_hw: Sequence[int],
                 *, group: str | None = None, scale_ratio: float | None = None) -> Callable:
    """The expected action on a stage's output of ``shape`` (see the module docstring).

    Args:
      kind, magnitude: as ``input_action``.
      shape: the stage's array shape: [N, D], [N, h, w, C] or [N, h, w, C, G].
      input_hw: (H, W) of the model's input (sets the shift at the stage's resolution).
      group: what a trailing axis of rank-5 stages is: "p4", "p4m", "scale" or None (left
        alone).
      scale_ratio: ratio between neighbouring scales (needed for ``group="scale"``).
    """
    _check_kind(kind)
    if group not in (None, "p4", "p4m", "scale"):
        raise ValueError(f"group must be None, 'p4', 'p4m' or 'scale', got {group!r}")
    if len(shape) == 2:
        return lambda y: y
    if len(shape) not in (4, 5):
        raise ValueError(f"stage arrays must be [N, D], [N, h, w, C] or [N, h, w, C, G], got "
                         f"shape {tuple(shape)}")
    if kind == "shift":
        dy = magnitude * shape[1] / input_hw[0]
        dx = magnitude * shape[2] / input_hw[1]
        if float(dy).is_integer() and float(dx).is_integer():
            return lambda y: transforms.shift(y, int(dy), int(dx))
        return lambda y: transforms.subpixel_shift(y, dy, dx, mode="circular")
    grid = input_action(kind, magnitude)
    if len(shape) == 4 or group is None:
        return grid
    if kind == "rotate" and group in ("p4", "p4m"):
        k = int(round(magnitude / 90.0)) % 4
        return lambda y: jnp.take(grid(y), (np.arange(shape[-1]) - k) % 4
                                  + 4 * (np.arange(shape[-1]) // 4), axis=-1)
    if kind == "scale" and group == "scale":
        if scale_ratio is None or not scale_ratio > 0:
            raise ValueError(f"scale_ratio must be > 0 for group='scale', got {scale_ratio!r}")
        steps = _scale_steps(magnitude, scale_ratio)
        return lambda y: transforms.scale_axis_shift(grid(y), steps)
    return grid


def _scale_steps(factor: float, ratio: float) -> int:
    return int(round(math.log(factor) / math.log(ratio)))


def _defined_scales(factor, ratio, num_scales, reach: int = 0) -> slice:
    """The scales ``s`` on which both sides read only scales that exist on the ladder.

    ``g' f(x)`` at ``s`` is ``f(x)`` at ``s - steps``: it must exist. An output scale reads
    input scales ``s .. s + reach``; on either side they must stay below ``num_scales``,
    else the conv met the zero fill past the ladder on one side and not on the other.
    """
    steps = _scale_steps(factor, ratio)
    return slice(max(steps, 0), num_scales - reach + min(steps, 0))


def _stage_reach(scale_reach, name: str) -> int:
    reach = scale_reach.get(name, 0) if isinstance(scale_reach, Mapping) else scale_reach
    if not isinstance(reach, (int, np.integer)) or isinstance(reach, bool) or reach < 0:
        raise ValueError(f"scale_reach must be a non-negative int (or a mapping of stage names "
                         f"to them), got {reach!r} for stage {name!r}")
    return int(reach)


def as_stages(out) -> Mapping[str, jax.Array]:
    """{stage: array} of a model's ``(logits, features)`` (logits last) or {"output": array}."""
    if isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], Mapping):
        logits, features = out
        return {**features, "logits": logits}
    return {"output": out}


def sweep(f: Callable, x, kind: str, magnitudes: Sequence[float], *,
          group: str | None = None, scale_ratio: float | None = None,
          scale_reach: int | Mapping[str, int] = 0,
          mask_fraction: float | None = 0.5) -> dict[str, np.ndarray]:
    """Error curves ``relative_error(f(g x), g' f(x))`` for every stage of ``f``.

    Scale maps under zooms ([N, h, w, C, S] stages, ``group="scale"``, ``kind="scale"``):
    the ladder is finite and a zoom by ``ratio^k`` moves every map ``k`` scales along it, so
    only the output scales ``s`` are compared for which both sides are defined on the
    ladder: ``s - k`` exists (the scales shifted in from off the ladder are zero-filled), and
    the ``1 + scale_reach`` input scales ``s .. s + scale_reach`` that an output scale reads
    (its receptive field over scales: ``scale_span - 1`` per scale conv) exist for ``s`` and
    for ``s - k``. The other scales see the zero fill past the coarsest scale on one side
    only -- an artefact of the finite ladder, not of the layer (default SESN with
    ``scale_span=2``, zoom sqrt(2), smooth 64x64 inputs: 64% at the top scale against 3.4%
    at the scale below) -- and are left out. A stage with no scale left gets NaN.

    Args:
      f: maps [N, H, W, C] to an array or to ``(logits, features)`` (a model's output).
      x: [N, H, W, C] input (smooth inputs show interpolation-limited errors best).
      kind: "shift", "rotate" or "scale".
      magnitudes: pixels, degrees or zoom factors.
      group, scale_ratio: how rank-5 stages transform (``stage_action``).
      scale_reach: for scale maps, how many scales above its own each output scale reads:
        one int for every stage, or {stage name: int} (missing names: 0), e.g.
        ``models.sesn.SESN.scale_reach()``.
      mask_fraction: compare grids on a central disk of radius ``mask_fraction * min(h, w) / 2``;
        None compares everything.

    Returns:
      {stage name: [len(magnitudes)] float64 errors} for the stages of ``f``'s features (in
      the order ``f`` returns them; ``jax.jit`` sorts dict keys) and "logits".
    """
    _check_kind(kind)
    x = jnp.asarray(x)
    fx = as_stages(f(x))
    curves = {name: np.zeros(len(magnitudes)) for name in fx}
    for t, magnitude in enumerate(magnitudes):
        fgx = as_stages(f(input_action(kind, magnitude)(x)))
        for name, y in fx.items():
            expected = stage_action(kind, magnitude, y.shape, x.shape[1:3], group=group,
                                    scale_ratio=scale_ratio)(y)
            got = fgx[name]
            mask = None
            if mask_fraction is not None and y.ndim >= 4:
                mask = central_mask(got.shape[1], got.shape[2],
                                    radius=mask_fraction * min(got.shape[1:3]) / 2)
            if got.shape != expected.shape:
                raise ValueError(f"stage {name!r}: f(g x) has shape {got.shape} but g' f(x) has "
                                 f"{expected.shape}")
            if group == "scale" and y.ndim == 5 and kind == "scale":
                kept = _defined_scales(magnitude, scale_ratio, y.shape[-1],
                                       _stage_reach(scale_reach, name))
                got, expected = got[..., kept], expected[..., kept]
                if got.shape[-1] == 0:
                    curves[name][t] = np.nan
                    continue
            curves[name][t] = float(relative_error(got, expected, mask))
    return curves
