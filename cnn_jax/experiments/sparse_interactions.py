"""Experiment 4, sparse interactions: parameters and connections of a dense, a locally
connected and a convolutional layer with the same outputs, as the input image grows.

For an input H x W x C and F filters of size K x K ("valid"), every layer has
O = (H - K + 1)(W - K + 1) F outputs:

=========  ======================  ====================
layer      parameters              connections
=========  ======================  ====================
dense      H W C O + O             H W C O
local      O K K C + O             O K K C
conv       K K C F + F             O K K C
=========  ======================  ====================

A connection is an (input unit, output unit) pair joined by a weight. The counts are taken
from the built Flax layers (parameter shapes; and one forward pass with every weight 1, every
bias 0 and every input 1, whose outputs are the number of inputs each output sees) and
checked against the closed forms above.
"""

from __future__ import annotations

import dataclasses
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from cnn_jax.experiments import checks, results
from cnn_jax.layers.conv import Conv2D
from cnn_jax.layers.local import LocallyConnected2D

__all__ = ["LAYERS", "Settings", "built_counts", "closed_form", "run"]

NAME = "sparse_interactions"
LAYERS = ("dense", "local", "conv")
CLAIM = ("Convolution has sparse interactions (each output sees K x K inputs) and shares its "
         "weights, so its parameters do not grow with the image while a dense layer's grow "
         "with the square of the image area.")


def closed_form(h: int, w: int, c: int, f: int, k: int) -> dict[str, dict[str, int]]:
    """``{layer: {"outputs", "params", "connections"}}`` from the formulas of the docstring."""
    if min(h, w) < k or min(h, w, c, f, k) < 1:
        raise ValueError(f"need H, W >= K >= 1 and C, F >= 1, got H={h} W={w} C={c} F={f} "
                         f"K={k}")
    o = (h - k + 1) * (w - k + 1) * f
    return {"dense": {"outputs": o, "params": h * w * c * o + o, "connections": h * w * c * o},
            "local": {"outputs": o, "params": o * k * k * c + o, "connections": o * k * k * c},
            "conv": {"outputs": o, "params": k * k * c * f + f, "connections": o * k * k * c}}


class _Dense(nn.Module):
    """Flatten, then Dense(outputs): the dense layer with the conv's number of outputs."""

    outputs: int

    @nn.compact
    def __call__(self, x):
        return nn.Dense(self.outputs)(x.reshape(x.shape[0], -1))


def layer(kind: str, h: int, w: int, f: int, k: int) -> nn.Module:
    """The Flax layer ``kind`` (one of ``LAYERS``) for an H x W input."""
    if kind == "dense":
        return _Dense((h - k + 1) * (w - k + 1) * f)
    if kind == "local":
        return LocallyConnected2D(f, k)
    if kind == "conv":
        return Conv2D(f, k, impl="xla")
    raise ValueError(f"kind must be one of {LAYERS}, got {kind!r}")


def built_counts(kind: str, h: int, w: int, c: int, f: int, k: int) -> dict[str, int]:
    """``{"outputs", "params", "connections"}`` counted from the built layer ``kind``."""
    module = layer(kind, h, w, f, k)
    x = jnp.ones((1, h, w, c), jnp.float32)
    shapes = jax.eval_shape(module.init, jax.random.key(0), x)["params"]
    params = sum(math.prod(s.shape) for s in jax.tree.leaves(shapes))
    unit = jax.tree_util.tree_map_with_path(
        lambda path, s: (jnp.zeros if path[-1].key == "bias" else jnp.ones)(s.shape, s.dtype),
        shapes)
    fan_in = module.apply({"params": unit}, x)  # the number of inputs each output sees
    return {"outputs": int(fan_in.size), "params": int(params),
            "connections": int(np.asarray(fan_in, np.float64).sum())}


def _figure(rows, workdir: str) -> str:
    fig, axes = plt.subplots(1, 2, figsize=results.FIGSIZE)
    styles = {"dense": ("o-", "C0"), "local": ("s--", "C1"), "conv": ("^:", "C2")}
    for ax, what in zip(axes, ("params", "connections")):
        for kind in LAYERS:
            pts = [(r["pixels"], r[what]) for r in rows if r["layer"] == kind]
            ax.loglog(*zip(*pts), styles[kind][0], color=styles[kind][1], label=kind)
        ax.set_xlabel("input pixels H x W (log scale)")
        ax.set_ylabel(f"{what} (log scale)")
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    fig.suptitle("Conv: parameters constant, connections linear; dense: both quadratic in area")
    return results.save_png(fig, workdir, "figures/counts.png")


@dataclasses.dataclass(frozen=True)
class Settings:
    """The experiment's knobs (``scripts/sparse_interactions.py`` makes one flag per field)."""

    sizes: tuple[int, ...] = (8, 16, 24, 32, 48, 64)
    channels: int = 1
    filters: int = 4
    kernel: int = 3
    quick: bool = False

    def __post_init__(self):
        checks.positive(self, "channels", "filters", "kernel")
        sizes = checks.items("sizes", self.sizes, lambda v: checks.as_int(v, self.kernel),
                             increasing=True)
        if len(sizes) < 2:
            raise checks.FlagError("sizes", self.sizes, "give at least two increasing sizes, "
                                                        f"each >= --kernel={self.kernel}")


def run(workdir: str, settings: Settings = Settings(), *, command_line: str | None = None
        ) -> dict:
    """Counts every layer at every square size, writes ``counts.csv``, the figure and
    ``experiment.json`` into ``workdir``; raises if a count disagrees with its closed form.

    Returns:
      The ``experiment.json`` record.
    """
    sizes, channels, filters, kernel = (settings.sizes, settings.channels, settings.filters,
                                        settings.kernel)
    rows = []
    for n in sizes:
        expected = closed_form(n, n, channels, filters, kernel)
        for kind in LAYERS:
            got = built_counts(kind, n, n, channels, filters, kernel)
            if got != expected[kind]:
                raise AssertionError(f"{kind} at {n}x{n}: built {got} != closed form "
                                     f"{expected[kind]}")
            rows.append({"size": n, "pixels": n * n, "layer": kind, **got,
                         "matches_closed_form": True})
    table = results.write_csv(workdir, "counts.csv", rows)
    figure = _figure(rows, workdir)
    last = {r["layer"]: r for r in rows if r["size"] == sizes[-1]}
    first = {r["layer"]: r for r in rows if r["size"] == sizes[0]}
    growth = (sizes[-1] / sizes[0]) ** 2
    numbers = {
        "largest_size": sizes[-1],
        "dense_params": last["dense"]["params"], "local_params": last["local"]["params"],
        "conv_params": last["conv"]["params"],
        "dense_over_conv_params": last["dense"]["params"] / last["conv"]["params"],
        "dense_over_local_connections": (last["dense"]["connections"]
                                         / last["local"]["connections"]),
        "area_growth": growth,
        "dense_params_growth": last["dense"]["params"] / first["dense"]["params"],
        "conv_connections_growth": last["conv"]["connections"] / first["conv"]["connections"],
    }
    finding = (f"From {sizes[0]}x{sizes[0]} to {sizes[-1]}x{sizes[-1]} pixels (area x"
               f"{growth:.0f}) the dense layer's parameters grow x"
               f"{numbers['dense_params_growth']:.0f}, the conv layer's stay at "
               f"{last['conv']['params']} while its connections grow x"
               f"{numbers['conv_connections_growth']:.0f}; all counts from the built layers "
               "equal the closed forms.")
    return results.write_experiment(
        workdir, name=NAME, title="4. Sparse interactions: dense vs locally connected vs conv",
        claim=CLAIM, quick=settings.quick, finding=finding,
        tables=[(f"Counts per layer ({channels} channel(s) in, {filters} filters of "
                 f"{kernel}x{kernel}, valid)", table)],
        figures=[("Parameters and connections against image area", figure)],
        numbers=numbers, command_line=command_line)
