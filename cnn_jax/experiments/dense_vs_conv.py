"""Experiment 3, dense vs conv (global vs local): the MLP and the small CNN on Fashion-MNIST.

Both train with the same data, optimiser (Adam 1e-3), batch (256) and epoch budget (with
``patience``, the lecture's early stopping). The table gives parameters, test accuracy and
time; the figure shows the first Dense layer's weights, one
28 x 28 image per unit (each unit sees the whole image: a global template), beside the first
conv layer's 3 x 3 filters (each sees a 3 x 3 patch: a local detector, reused everywhere).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from cnn_jax.experiments import checks, results
from cnn_jax.experiments.training import load_subsets, train
from cnn_jax.plotting import plt

__all__ = ["Settings", "run"]

NAME = "dense_vs_conv"
CLAIM = ("Dense layers connect every input to every unit and learn global templates; conv "
         "layers learn small local filters shared across positions, reaching better accuracy "
         "with fewer parameters on images.")


@dataclasses.dataclass(frozen=True)
class Settings:
    """Knobs (one flag each in ``scripts/dense_vs_conv.py``)."""

    dataset: str = "fashion_mnist"
    train_examples: int = 0  # 0: the whole split
    test_examples: int = 0
    epochs: int = 3
    patience: int = 0  # > 0: early stopping on the test loss, best weights kept (lecture)
    mlp_layers: int = 1
    mlp_units: int = 512
    features: tuple[int, ...] = (32, 64)
    dense_units: tuple[int, ...] = (128,)
    templates: int = 16
    seed: int = 0
    quick: bool = False

    def __post_init__(self):
        checks.subsets(self.dataset, self.train_examples, self.test_examples)
        checks.positive(self, "epochs", "mlp_layers", "mlp_units", "templates")
        checks.sizes("features", self.features)
        checks.sizes("dense_units", self.dense_units, allow_empty=True)
        checks.integer("patience", self.patience, 0)
        checks.seed("seed", self.seed)
        checks.at_most("templates", self.templates, self.mlp_units, "the MLP's units "
                       "(--mlp_units)")


def _grid(subfig, images, cols, title):
    rows = -(-len(images) // cols)
    axes = np.atleast_2d(subfig.subplots(rows, cols))
    for i, ax in enumerate(axes.ravel()):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= len(images):
            ax.axis("off")
    for ax, image in zip(axes.ravel(), images):
        lim = float(np.abs(image).max()) or 1.0
        ax.imshow(image, cmap="RdBu_r", vmin=-lim, vmax=lim)
    subfig.suptitle(title, fontsize=9)


def _figure(dense_kernel, conv_kernel, shape, workdir, templates):
    h, w, c = shape
    units = [dense_kernel[:, u].reshape(h, w, c)[..., 0] for u in range(
        min(templates, dense_kernel.shape[1]))]
    filters = [conv_kernel[:, :, 0, f] for f in range(conv_kernel.shape[-1])]
    fig = plt.figure(figsize=results.FIGSIZE)
    left, right = fig.subfigures(1, 2)
    _grid(left, units, int(np.ceil(np.sqrt(len(units)))),
          f"MLP: first {len(units)} Dense units, {h}x{w} weights each")
    _grid(right, filters, int(np.ceil(np.sqrt(len(filters)))),
          f"CNN: all {len(filters)} first-layer filters, "
          f"{conv_kernel.shape[0]}x{conv_kernel.shape[1]} each")
    fig.suptitle("Dense units learn whole-image templates; conv filters are small local "
                 "detectors", fontsize=10, y=1.04)
    return results.save_png(fig, workdir, "figures/weights.png")


def run(workdir: str, settings: Settings = Settings(), *, command_line: str | None = None
        ) -> dict:
    """Trains both models (resumable, in ``workdir/mlp`` and ``workdir/cnn``), writes
    ``models.csv``, ``figures/weights.png`` and ``experiment.json``."""
    s = settings
    train_set, test_set = load_subsets(s.dataset, s.train_examples, s.test_examples)
    configs = {"mlp": {"num_layers": s.mlp_layers, "units": s.mlp_units, "activation": "elu"},
               "cnn": {"features": s.features, "dense_units": s.dense_units}}
    rows, params = [], {}
    for name, kwargs in configs.items():
        _, params[name], r = train(f"{workdir}/{name}", name, kwargs, train_set, test_set,
                                   epochs=s.epochs, seed=s.seed, patience=s.patience)
        rows.append({"model": name, "params": r["param_count"],
                     "test_accuracy": r["valid_accuracy"], "test_loss": r["valid_loss"],
                     "train_accuracy": r["train_accuracy"], "epochs": r["epochs_run"],
                     "best_epoch": r["best_epoch"], "wall_time_s": r["wall_time"],
                     "s_per_epoch": r["wall_time"] / max(r["epochs_run"], 1)})
    table = results.write_csv(workdir, "models.csv", rows)
    figure = _figure(np.asarray(params["mlp"]["dense_1"]["kernel"]),
                     np.asarray(params["cnn"]["conv_1"]["kernel"]),
                     train_set.info.image_shape, workdir, s.templates)
    mlp, cnn = rows
    numbers = {"mlp_params": mlp["params"], "cnn_params": cnn["params"],
               "mlp_test_accuracy": mlp["test_accuracy"],
               "cnn_test_accuracy": cnn["test_accuracy"],
               "mlp_epochs": mlp["epochs"], "cnn_epochs": cnn["epochs"],
               "train_examples": len(train_set)}
    better = "higher" if cnn["test_accuracy"] > mlp["test_accuracy"] else "lower"
    finding = (f"After {cnn['epochs']} epoch(s) the CNN ({cnn['params']:,} parameters) reaches "
               f"test accuracy {cnn['test_accuracy']:.4f}, {better} than the MLP's "
               f"{mlp['test_accuracy']:.4f} ({mlp['params']:,} parameters, {mlp['epochs']} "
               "epoch(s)); the MLP's units are whole-image templates, the CNN's filters 3x3 "
               "local detectors.")
    return results.write_experiment(
        workdir, name=NAME, title="3. Dense vs conv: global templates vs local detectors",
        claim=CLAIM, quick=s.quick, finding=finding,
        tables=[("MLP vs CNN: parameters, accuracy, time (this run's wall time; a run that "
                 "shares its CPU is slower: `make bench` times models side by side)", table)],
        figures=[("First-layer weights", figure)], numbers=numbers,
        command_line=command_line)
