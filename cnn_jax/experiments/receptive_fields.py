"""Experiment 6, receptive fields: analytic per layer for four conv stacks, and effective
(gradient-based, Luo et al. 2016) for a 3x3 ReLU conv stack at initialisation and after
training on Fashion-MNIST.

The effective receptive field (ERF) of the centre unit of layer L is |d unit / d input|
(summed over channels, ``receptive_field.gradient_map``), averaged over random inputs and
initialisations; its size is the side of the smallest centred square holding ``mass`` of it
(``receptive_field.centred_mass_width``). Luo et al. find that the ERF is roughly Gaussian
and grows like sqrt(L) while the analytic field grows like L.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from cnn_jax import models, receptive_field
from cnn_jax.experiments import checks, results
from cnn_jax.experiments.training import load_subsets, train
from cnn_jax.plotting import plt

__all__ = ["STACKS", "Settings", "analytic_table", "effective_field", "run"]

NAME = "receptive_fields"
CLAIM = ("Stacking small convolutions grows the receptive field with depth (linearly for "
         "3x3 stride 1, faster with pooling, strides or dilation), but the effective field "
         "that gradients see is smaller and concentrated in the centre.")
# Stage i (from 1) of each stack, as (kernel, stride[, dilation]) along one axis.
STACKS = {
    "3x3 conv": lambda i: [(3, 1)],
    "3x3 conv + 2x2 pool": lambda i: [(3, 1), (2, 2)],
    "3x3 conv, stride 2": lambda i: [(3, 2)],
    "3x3 conv, dilation 2^(i-1)": lambda i: [(3, 1, 2 ** (i - 1))],
}


@dataclasses.dataclass(frozen=True)
class Settings:
    """Knobs (one flag each in ``scripts/receptive_fields.py``)."""

    max_depth: int = 8
    channels: int = 16
    size: int = 64
    samples: int = 8
    mass: float = 0.95
    train_depth: int = 4
    dataset: str = "fashion_mnist"
    train_examples: int = 10000
    test_examples: int = 1000
    epochs: int = 2
    seed: int = 0
    quick: bool = False

    def __post_init__(self):
        checks.positive(self, "max_depth", "channels", "samples", "train_depth", "epochs")
        if checks.integer("size", self.size) < 2 * self.max_depth + 1:
            raise checks.FlagError("size", self.size, f"smaller than the analytic field at "
                                   f"--max_depth={self.max_depth}; expected an integer >= "
                                   f"{2 * self.max_depth + 1}")
        checks.number("mass", self.mass, 0, 1, low_open=True)
        checks.subsets(self.dataset, self.train_examples, self.test_examples)
        checks.seed("seed", self.seed)
        checks.at_most("train_depth", self.train_depth, self.max_depth, "--max_depth")
        if self.test_examples:
            checks.at_most("samples", self.samples, self.test_examples, "--test_examples")


def analytic_table(max_depth: int) -> list[dict]:
    """Rows {stack, depth, rf, jump} for every stack of ``STACKS`` and depth 1..max_depth."""
    rows = []
    for stack, stage in STACKS.items():
        layers = [layer for i in range(1, max_depth + 1) for layer in stage(i)]
        per_layer = receptive_field.analytic(layers)
        ends = np.cumsum([len(stage(i)) for i in range(1, max_depth + 1)]) - 1
        rows += [{"stack": stack, "depth": d, "rf": per_layer[e][0], "jump": per_layer[e][1]}
                 for d, e in enumerate(ends, 1)]
    return rows


def _stack(depth: int, channels: int):
    """``depth`` 3x3 'same' ReLU convs, no pooling, GAP head (the registry CNN)."""
    return models.get("cnn", features=(channels,) * depth, padding="same", pool="none",
                      head="gap")


def _field_fn(model, layer: str):
    """Jitted ``(params, x [1, H, W, C]) -> [H, W]`` gradient map of ``layer``'s centre unit."""
    return jax.jit(lambda p, a: receptive_field.gradient_map(
        lambda z: model.apply({"params": p}, z)[1][layer], a))


def effective_field(model, params, x: jax.Array, layer: str) -> np.ndarray:
    """Mean |d centre unit of ``layer`` / d input| over the images ``x`` [N, H, W, C] -> [H, W]."""
    fn = _field_fn(model, layer)
    return np.mean([np.asarray(fn(params, a[None])) for a in x], 0)


def centre_crop(field: np.ndarray, radius: int) -> np.ndarray:
    """The ``2 radius + 1`` square around the centre of ``field`` [H, W] (the unit the maps are
    taken of, ``(H // 2, W // 2)``), each map cropped around its own centre."""
    ci, cj = field.shape[0] // 2, field.shape[1] // 2
    return field[ci - radius: ci + radius + 1, cj - radius: cj + radius + 1]


def _init_fields(s: Settings, rng: np.random.Generator) -> list[np.ndarray]:
    """ERF of layer L at init, for L = 1..max_depth (random inputs and inits)."""
    fields = []
    for depth in range(1, s.max_depth + 1):
        model = _stack(depth, s.channels)
        fn, init = _field_fn(model, f"conv_{depth}"), jax.jit(model.init)
        maps = []
        for k in range(s.samples):
            x = jnp.asarray(rng.normal(size=(1, s.size, s.size, 1)), jnp.float32)
            maps.append(np.asarray(fn(init(jax.random.key(s.seed * 1000 + k), x)["params"], x)))
        fields.append(np.mean(maps, 0))
    return fields


def _figure_rf(rows, erf_rows, workdir, mass):
    fig, (left, right) = plt.subplots(1, 2, figsize=results.FIGSIZE)
    styles = ["o-", "s--", "^:", "d-."]
    for style, stack in zip(styles, STACKS):
        pts = [(r["depth"], r["rf"]) for r in rows if r["stack"] == stack]
        left.semilogy(*zip(*pts), style, label=stack)
    left.set_xlabel("depth (conv layers)")
    left.set_ylabel("analytic receptive field (px, log scale)")
    left.legend(fontsize=7)
    depths = [r["depth"] for r in erf_rows]
    right.plot(depths, [r["analytic_rf"] for r in erf_rows], "o-", label="analytic (2L+1)")
    right.plot(depths, [r["erf_width_init"] for r in erf_rows], "s--",
               label=f"effective, init ({mass:.0%} mass)")
    right.plot(depths, [r["erf_half_mass_width_init"] for r in erf_rows], "d:",
               label="effective, init (50% mass)")
    trained = [(r["depth"], r["erf_width_trained"]) for r in erf_rows
               if r["erf_width_trained"] != ""]
    if trained:
        right.plot(*zip(*trained), "*", markersize=12,
                   label=f"effective, trained ({mass:.0%} mass)")
    right.set_xlabel("depth (3x3 conv layers)")
    right.set_ylabel("receptive field width (px)")
    right.legend(fontsize=7)
    for ax in (left, right):
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    fig.suptitle("Receptive fields grow with depth; the effective one grows slower than 2L+1")
    return results.save_png(fig, workdir, "figures/rf_vs_depth.png")


def run(workdir: str, settings: Settings = Settings(), *, command_line: str | None = None
        ) -> dict:
    """Analytic table, ERF at init for every depth, ERF before/after training at
    ``train_depth``; writes CSVs, figures and ``experiment.json``."""
    s = settings
    train_set, test_set = load_subsets(s.dataset, s.train_examples, s.test_examples)
    rows = analytic_table(s.max_depth)
    table_rf = results.write_csv(workdir, "analytic.csv", rows)
    init = _init_fields(s, np.random.default_rng(s.seed))

    kwargs = {"features": (s.channels,) * s.train_depth, "padding": "same", "pool": "none",
              "head": "gap"}
    model, trained, fit_results = train(f"{workdir}/cnn", "cnn", kwargs, train_set, test_set,
                                        epochs=s.epochs, seed=s.seed)
    x = test_set.images[: s.samples].astype(np.float32) / 255.0
    layer = f"conv_{s.train_depth}"
    start = jax.jit(model.init)(jax.random.key(s.seed), x[:1])["params"]
    erf_before = effective_field(model, start, x, layer)
    erf_after = effective_field(model, trained, x, layer)
    width = lambda m: receptive_field.centred_mass_width(m, s.mass)

    erf_rows = [{"depth": d, "analytic_rf": 2 * d + 1, "erf_width_init": width(m),
                 "erf_width_trained": width(erf_after) if d == s.train_depth else "",
                 "erf_half_mass_width_init": receptive_field.centred_mass_width(m, 0.5)}
                for d, m in enumerate(init, 1)]
    table_erf = results.write_csv(workdir, "effective.csv", erf_rows)
    fig_rf = _figure_rf(rows, erf_rows, workdir, s.mass)
    rf = 2 * s.train_depth + 1
    # init maps are size x size, the test-image maps 28 x 28: each is cropped about its centre
    fig = results.image_grid(
        [[centre_crop(m, rf) for m in (init[s.train_depth - 1], erf_before, erf_after)]],
        title=f"Effective field of a depth-{s.train_depth} 3x3 stack ({rf}x{rf} analytic): "
              "centre-heavy", cmap="viridis",
        col_labels=["init, random inputs", "init, test images", "trained, test images"])
    fig_maps = results.save_png(fig, workdir, "figures/erf_maps.png")

    deep = erf_rows[-1]
    numbers = {"max_depth": s.max_depth, "analytic_rf_at_max_depth": deep["analytic_rf"],
               "erf_width_init_at_max_depth": deep["erf_width_init"],
               "erf_half_mass_width_init_at_max_depth": deep["erf_half_mass_width_init"],
               "erf_width_before_training": width(erf_before),
               "erf_width_after_training": width(erf_after),
               "train_depth": s.train_depth, "test_accuracy": fit_results["valid_accuracy"],
               "mass": s.mass}
    finding = (f"At depth {s.max_depth} the analytic field of 3x3 convs is "
               f"{deep['analytic_rf']} px but {s.mass:.0%} of the gradient lies in a centred "
               f"{deep['erf_width_init']} px window at init, and half of it in "
               f"{deep['erf_half_mass_width_init']} px; at depth {s.train_depth}, "
               f"training (test accuracy {fit_results['valid_accuracy']:.3f}) moves that "
               f"width from {numbers['erf_width_before_training']} to "
               f"{numbers['erf_width_after_training']} px (analytic {rf}).")
    return results.write_experiment(
        workdir, name=NAME, title="6. Receptive fields: analytic and effective", claim=CLAIM,
        quick=s.quick, finding=finding,
        tables=[("Analytic receptive field and jump per depth", table_rf),
                (f"3x3 stack: analytic vs effective ({s.mass:.0%} mass) width", table_erf)],
        figures=[("Receptive field against depth", fig_rf),
                 ("Effective receptive field maps", fig_maps)],
        numbers=numbers, command_line=command_line)
