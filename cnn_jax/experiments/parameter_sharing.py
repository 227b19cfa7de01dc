"""Experiment 5, parameter sharing ablation: one architecture as conv ("cnn") and as locally
connected ("lcn": the same filters, unshared across positions).

Both are stage x (3x3 valid -> ReLU -> 2x2 max pool), then Dense -> logits; only the weight
sharing differs. Reported: parameters, test accuracy, and test accuracy when the test images
are shifted by 0..k pixels (zero fill; the mean over the four directions up/down/left/right,
``robustness.accuracy_under_transform``).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from cnn_jax import transforms
from cnn_jax.experiments import checks, results
from cnn_jax.experiments.robustness import accuracy_under_transform, predictor
from cnn_jax.experiments.training import load_subsets, train
from cnn_jax.plotting import plt

__all__ = ["DIRECTIONS", "Settings", "run", "shift_accuracy"]

NAME = "parameter_sharing"
CLAIM = ("Sharing one filter across positions (convolution) needs far fewer parameters than "
         "a locally connected layer with the same connections, and makes the features "
         "shift-equivariant.")
DIRECTIONS = ((1, 0), (-1, 0), (0, 1), (0, -1))  # (dy, dx): down, up, right, left


@dataclasses.dataclass(frozen=True)
class Settings:
    """Knobs (one flag each in ``scripts/parameter_sharing.py``)."""

    dataset: str = "fashion_mnist"
    train_examples: int = 20000
    test_examples: int = 0
    epochs: int = 3
    patience: int = 0  # > 0: early stopping on the test loss, best weights kept (lecture)
    features: tuple[int, ...] = (16, 32)
    dense_units: tuple[int, ...] = (64,)
    max_shift: int = 4
    seed: int = 0
    quick: bool = False

    def __post_init__(self):
        checks.subsets(self.dataset, self.train_examples, self.test_examples)
        checks.positive(self, "epochs", "max_shift")
        checks.sizes("features", self.features)
        checks.sizes("dense_units", self.dense_units, allow_empty=True)
        checks.integer("patience", self.patience, 0)
        checks.seed("seed", self.seed)


def shift_accuracy(predict, params, images, labels, max_shift: int) -> np.ndarray:
    """Accuracy of ``predict(params, x)`` at shifts 0..max_shift px, averaged over
    ``DIRECTIONS`` -> [max_shift + 1]."""
    per_direction = [accuracy_under_transform(
        predict, params, images, labels,
        lambda x, m, dy=dy, dx=dx: transforms.shift(x, dy * m, dx * m, mode="zero"),
        range(max_shift + 1)) for dy, dx in DIRECTIONS]
    return np.mean(per_direction, 0)


def _figure(shifts, curves, workdir):
    fig, ax = plt.subplots(figsize=results.FIGSIZE)
    for (name, acc), style in zip(curves.items(), ("o-", "s--")):
        ax.plot(shifts, acc, style, label=name)
    ax.set_xlabel("shift of the test images (px, mean of 4 directions, zero fill)")
    ax.set_ylabel("test accuracy")
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("Accuracy of conv (shared) vs locally connected (unshared) under shifts")
    return results.save_png(fig, workdir, "figures/shift_accuracy.png")


def run(workdir: str, settings: Settings = Settings(), *, command_line: str | None = None
        ) -> dict:
    """Trains both (resumable, ``workdir/cnn``, ``workdir/lcn``), sweeps shifts, writes CSVs,
    the figure and ``experiment.json``."""
    s = settings
    train_set, test_set = load_subsets(s.dataset, s.train_examples, s.test_examples)
    kwargs = {"features": s.features, "dense_units": s.dense_units}
    rows, curves = [], {}
    for name in ("cnn", "lcn"):
        model, params, r = train(f"{workdir}/{name}", name, kwargs, train_set, test_set,
                                 epochs=s.epochs, seed=s.seed, patience=s.patience)
        curves[name] = shift_accuracy(predictor(model), params, test_set.images,
                                      test_set.labels, s.max_shift)
        rows.append({"model": name, "params": r["param_count"],
                     "test_accuracy": r["valid_accuracy"],
                     "train_accuracy": r["train_accuracy"], "epochs": r["epochs_run"],
                     "best_epoch": r["best_epoch"], "wall_time_s": r["wall_time"],
                     f"accuracy_at_{s.max_shift}px": float(curves[name][-1])})
    shifts = list(range(s.max_shift + 1))
    table_models = results.write_csv(workdir, "models.csv", rows)
    table_shift = results.write_csv(workdir, "shift_accuracy.csv", [
        {"shift_px": k, "cnn_accuracy": float(curves["cnn"][k]),
         "lcn_accuracy": float(curves["lcn"][k])} for k in shifts])
    figure = _figure(shifts, curves, workdir)
    cnn, lcn = rows
    drop = {n: float(c[0] - c[-1]) for n, c in curves.items()}
    numbers = {"cnn_params": cnn["params"], "lcn_params": lcn["params"],
               "lcn_over_cnn_params": lcn["params"] / cnn["params"],
               "cnn_test_accuracy": cnn["test_accuracy"],
               "lcn_test_accuracy": lcn["test_accuracy"],
               "cnn_drop_at_max_shift": drop["cnn"], "lcn_drop_at_max_shift": drop["lcn"],
               "max_shift": s.max_shift, "cnn_epochs": cnn["epochs"], "lcn_epochs": lcn["epochs"],
               "train_examples": len(train_set)}
    finding = (f"Unsharing the filters multiplies the parameters by "
               f"{numbers['lcn_over_cnn_params']:.1f} ({cnn['params']:,} -> {lcn['params']:,}); "
               f"test accuracy is {cnn['test_accuracy']:.4f} (conv) vs "
               f"{lcn['test_accuracy']:.4f} (locally connected), and a {s.max_shift}-px shift "
               f"costs {drop['cnn']:.3f} vs {drop['lcn']:.3f} accuracy.")
    return results.write_experiment(
        workdir, name=NAME, title="5. Parameter sharing: conv vs locally connected",
        claim=CLAIM, quick=s.quick, finding=finding,
        tables=[("Parameters and accuracy", table_models),
                ("Test accuracy against shift", table_shift)],
        figures=[("Accuracy against shift", figure)], numbers=numbers,
        command_line=command_line)
