"""Experiment 9, variable input sizes: fully convolutional nets with global pooling (average:
"gap", max: "gmp") trained on 28 x 28 images, evaluated without retraining on the same test
items placed on larger zero canvases (centred, and at random positions via
``data.shifted``). The MLP cannot take such inputs: its first Dense layer fixes the input
size, and it says so.

Average pooling divides by the canvas area, so the background dilutes the object's
features; max pooling does not. Both are measured. Inside the net, "same" zero padding of
hidden maps differs from the hidden maps of a zero canvas (those are ReLU(bias) terms), so
the 28 x 28 borders the net saw in training are not reproduced on a canvas either.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from cnn_jax import data, models
from cnn_jax.experiments import checks, results
from cnn_jax.experiments.robustness import accuracy_under_transform, predictor
from cnn_jax.experiments.training import load_subsets, train
from cnn_jax.plotting import plt

__all__ = ["Settings", "centred", "mlp_refusal", "run"]

NAME = "variable_input"
HEAD_NAMES = {"gap": "global average pool", "gmp": "global max pool"}
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
    heads: tuple[str, ...] = ("gap", "gmp")
    seed: int = 0
    quick: bool = False

    def __post_init__(self):
        checks.subsets(self.dataset, self.train_examples, self.test_examples)
        checks.positive(self, "epochs")
        checks.sizes("features", self.features)
        checks.items("heads", self.heads, lambda v: checks.choice("heads", v, tuple(HEAD_NAMES)))
        info = data.known_info(self.dataset)
        side = info.image_shape[0] if info else 28  # a canvas holds a training image
        checks.items("canvases", self.canvases, lambda v: checks.as_int(v, side), increasing=True)
        checks.seed("seed", self.seed)


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
    styles = iter(("o-", "s--", "^-", "d--"))
    for head in dict.fromkeys(r["head"] for r in rows):
        for place in ("centred", "random"):
            pts = [(r["canvas_px"], r["accuracy"]) for r in rows
                   if r["head"] == head and r["placement"] in (place, "original")]
            ax.plot(*zip(*pts), next(styles), label=f"{HEAD_NAMES[head]}, {place}")
    ax.set_xlabel("canvas side (px); trained on 28")
    ax.set_ylabel("test accuracy")
    ax.set_xticks(sorted({r["canvas_px"] for r in rows}))
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Without retraining, larger canvases cost accuracy; max pooling loses less")
    return results.save_png(fig, workdir, "figures/canvas_accuracy.png")


def run(workdir: str, settings: Settings = Settings(), *, command_line: str | None = None
        ) -> dict:
    """Trains the GAP CNN (resumable, ``workdir/fcn``), evaluates every canvas, records the
    MLP's refusal; writes the CSV, figure and ``experiment.json``."""
    s = settings
    train_set, test_set = load_subsets(s.dataset, s.train_examples, s.test_examples)
    canvases = {28: (("original", test_set.images),)}
    for size in s.canvases:
        canvases[size] = (("centred", centred(test_set.images, size)),
                          ("random", data.shifted(test_set, canvas=size, seed=s.seed).images))
    rows, params_count = [], {}
    for head in s.heads:
        kwargs = {"features": s.features, "padding": "same", "head": head}
        model, params, r = train(f"{workdir}/{head}", "cnn", kwargs, train_set, test_set,
                                 epochs=s.epochs, seed=s.seed)
        params_count[head] = r["param_count"]
        for size, placements in canvases.items():
            for place, images in placements:
                acc = accuracy_under_transform(predictor(model), params, images,
                                               test_set.labels, lambda x, m: x, [0])[0]
                rows.append({"head": head, "canvas_px": size, "placement": place,
                             "accuracy": float(acc)})
    table = results.write_csv(workdir, "canvas_accuracy.csv", rows)
    figure = _figure(rows, workdir)
    refusal = mlp_refusal(train_set.info.image_shape, s.canvases[0])
    numbers = {f"{r['head']}_accuracy_{r['canvas_px']}_{r['placement']}": r["accuracy"]
               for r in rows}
    numbers.update({"params": params_count[s.heads[0]], "epochs": s.epochs,
                    "train_examples": len(train_set), "mlp_error": refusal})
    big = s.canvases[-1]
    parts = [f"{HEAD_NAMES[h]} {numbers[f'{h}_accuracy_28_original']:.3f} on the test set, "
             f"{numbers[f'{h}_accuracy_{big}_centred']:.3f} centred and "
             f"{numbers[f'{h}_accuracy_{big}_random']:.3f} at random positions on "
             f"{big}x{big}" for h in s.heads]
    finding = (f"Trained on 28x28 only: {'; '.join(parts)}. The MLP refuses a "
               f"{s.canvases[0]}x{s.canvases[0]} input ({refusal.split(' (')[0]}, ...).")
    return results.write_experiment(
        workdir, name=NAME, title="9. Variable input sizes: global pooling vs a dense network",
        claim=CLAIM, quick=s.quick, finding=finding,
        tables=[("Test accuracy on larger canvases", table)],
        figures=[("Accuracy against canvas size", figure)], numbers=numbers,
        command_line=command_line)
