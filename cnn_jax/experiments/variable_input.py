"""Experiment 9, variable input sizes: a fully convolutional net with global average pooling
trained on 28 x 28 images, evaluated without retraining on the same test items placed on
larger zero canvases (centred, and at random positions via ``data.shifted``). The MLP
cannot take such inputs: its first Dense layer fixes the input size, and it says so.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from cnn_jax import data, models
from cnn_jax.experiments import results
from cnn_jax.experiments.robustness import accuracy_under_transform, predictor
from cnn_jax.experiments.training import load_subsets, train
from cnn_jax.plotting import plt

__all__ = ["Settings", "centred", "mlp_refusal", "run"]

NAME = "variable_input"
CLAIM = ("A convolutional network with global pooling accepts images of any size and "
         "recognises an object wherever it sits; a dense network takes one input size only.")


@dataclasses.dataclass(frozen=True)
class Settings:
    """Knobs (one flag each in ``scripts/variable_input.py``)."""

    dataset: str = "fashion_mnist"
    train_examples: int = 20000
    test_examples: int = 0
    epochs: int = 3
    features: tuple[int, ...] = (32, 64)
    canvases: tuple[int, ...] = (56, 84)
    seed: int = 0
    quick: bool = False

    def __post_init__(self):
        if self.epochs < 1:
            raise ValueError(f"--epochs={self.epochs}: must be >= 1")
        if not self.canvases or min(self.canvases) < 28:
            raise ValueError(f"--canvases={','.join(map(str, self.canvases))}: give sizes "
                             ">= the 28-px training size")


def centred(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 [N, H, W, C] placed in the middle of a zero [N, size, size, C] canvas."""
    n, h, w, c = images.shape
    if size < max(h, w):
        raise ValueError(f"size must be >= the image size {max(h, w)}, got {size}")
    out = np.zeros((n, size, size, c), np.uint8)
    top, left = (size - h) // 2, (size - w) // 2
    out[:, top: top + h, left: left + w] = images
    return out


def mlp_refusal(image_shape: tuple[int, int, int], size: int) -> str:
    """The MLP's error message for a ``size`` x ``size`` input after init on ``image_shape``."""
    mlp = models.get("mlp", num_layers=1, units=8)
    params = jax.jit(mlp.init)(jax.random.key(0), jnp.zeros((1, *image_shape)))
    try:
        jax.eval_shape(mlp.apply, params, jnp.zeros((1, size, size, image_shape[-1])))
    except ValueError as e:
        return str(e)
    raise AssertionError(f"the MLP accepted a {size}x{size} input")


def _figure(rows, workdir):
    fig, ax = plt.subplots(figsize=results.FIGSIZE)
    for place, style in (("centred", "o-"), ("random", "s--")):
        pts = [(r["canvas_px"], r["accuracy"]) for r in rows if r["placement"] in (place,
                                                                                   "original")]
        ax.plot(*zip(*pts), style, label=f"{place} on the canvas")
    ax.set_xlabel("canvas side (px); trained on 28")
    ax.set_ylabel("test accuracy")
    ax.set_xticks(sorted({r["canvas_px"] for r in rows}))
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("A conv net with global pooling classifies larger canvases without retraining")
    return results.save_png(fig, workdir, "figures/canvas_accuracy.png")


def run(workdir: str, settings: Settings = Settings(), *, command_line: str | None = None
        ) -> dict:
    """Trains the GAP CNN (resumable, ``workdir/fcn``), evaluates every canvas, records the
    MLP's refusal; writes the CSV, figure and ``experiment.json``."""
    s = settings
    train_set, test_set = load_subsets(s.dataset, s.train_examples, s.test_examples)
    kwargs = {"features": s.features, "padding": "same", "head": "gap"}
    model, params, r = train(f"{workdir}/fcn", "cnn", kwargs, train_set, test_set,
                             epochs=s.epochs, seed=s.seed)
    predict = predictor(model)
    evaluate = lambda images: float(accuracy_under_transform(
        predict, params, images, test_set.labels, lambda x, m: x, [0])[0])
    rows = [{"canvas_px": 28, "placement": "original", "accuracy": evaluate(test_set.images)}]
    for size in s.canvases:
        rows.append({"canvas_px": size, "placement": "centred",
                     "accuracy": evaluate(centred(test_set.images, size))})
        rows.append({"canvas_px": size, "placement": "random",
                     "accuracy": evaluate(data.shifted(test_set, canvas=size,
                                                       seed=s.seed).images)})
    table = results.write_csv(workdir, "canvas_accuracy.csv", rows)
    figure = _figure(rows, workdir)
    refusal = mlp_refusal(train_set.info.image_shape, s.canvases[0])
    numbers = {f"accuracy_{r['canvas_px']}_{r['placement']}": r["accuracy"] for r in rows}
    numbers.update({"params": r["param_count"], "epochs": s.epochs,
                    "train_examples": len(train_set), "mlp_error": refusal})
    big = s.canvases[-1]
    finding = (f"Trained on 28x28 only, the GAP CNN scores {rows[0]['accuracy']:.4f} on the "
               f"test set, {numbers[f'accuracy_{big}_centred']:.4f} centred and "
               f"{numbers[f'accuracy_{big}_random']:.4f} at random positions on {big}x{big} "
               f"canvases; the MLP refuses a {s.canvases[0]}x{s.canvases[0]} input "
               f"({refusal.split(' (')[0]}, ...).")
    return results.write_experiment(
        workdir, name=NAME, title="9. Variable input sizes: global pooling vs a dense network",
        claim=CLAIM, quick=s.quick, finding=finding,
        tables=[("Test accuracy on larger canvases", table)],
        figures=[("Accuracy against canvas size", figure)], numbers=numbers,
        command_line=command_line)
