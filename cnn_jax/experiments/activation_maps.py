"""Experiment 10: activation maps, and convolution vs cross-correlation.

* The first-layer maps of a small CNN trained on Fashion-MNIST (ReLU after the conv), and
  the Sobel maps (gx, gy, magnitude), for a few test images.
* One asymmetric kernel applied to a real test image as cross-correlation and as
  convolution: ``convolve(x, k) == correlate(x, flip(k))`` holds to float rounding, while
  ``convolve(x, k) != correlate(x, k)`` (the kernel is not symmetric under a half turn).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from cnn_jax import ops
from cnn_jax.experiments import checks, results
from cnn_jax.experiments.training import load_subsets, train

__all__ = ["EMBOSS", "Settings", "flip_identity", "run", "sobel_similarity"]

NAME = "activation_maps"
CLAIM = ("A conv layer's filters act as local feature detectors (edges, blobs) that respond "
         "wherever the feature occurs, like hand-made Sobel filters; and convolution is "
         "cross-correlation with the kernel flipped.")
# An emboss kernel: not symmetric under a half turn, so convolution and correlation differ.
EMBOSS = np.array([[-2.0, -1.0, 0.0], [-1.0, 1.0, 1.0], [0.0, 1.0, 2.0]], np.float32)


@dataclasses.dataclass(frozen=True)
class Settings:
    """Knobs (one flag each in ``scripts/activation_maps.py``)."""

    dataset: str = "fashion_mnist"
    train_examples: int = 0  # 0: the whole train split
    test_examples: int = 0
    epochs: int = 2
    patience: int = 0  # > 0: early stopping on the test loss, best weights kept (lecture)
    features: tuple[int, ...] = (32, 64)
    dense_units: tuple[int, ...] = (128,)
    images: int = 3
    maps: int = 15
    seed: int = 0
    quick: bool = False

    def __post_init__(self):
        checks.subsets(self.dataset, self.train_examples, self.test_examples)
        checks.positive(self, "epochs", "images", "maps")
        checks.sizes("features", self.features)
        checks.sizes("dense_units", self.dense_units, allow_empty=True)
        checks.integer("patience", self.patience, 0)
        checks.seed("seed", self.seed)
        checks.at_most("maps", self.maps, self.features[0], "the first stage's filters "
                       "(--features)")
        if self.test_examples:
            checks.at_most("images", self.images, self.test_examples, "--test_examples")


def flip_identity(image: np.ndarray, kernel: np.ndarray) -> dict[str, np.ndarray]:
    """The three maps of the identity, "same" padding.

    Args:
      image: [H, W]; kernel: [K, K].

    Returns:
      {"correlation": corr(x, k), "convolution": conv(x, k),
      "correlation_flipped": corr(x, flip(k))}, each [H, W].
    """
    x = jnp.asarray(image, jnp.float32)
    return {"correlation": np.asarray(ops.correlate2d(x, kernel, padding="same")),
            "convolution": np.asarray(ops.convolve2d(x, kernel, padding="same")),
            "correlation_flipped": np.asarray(
                ops.correlate2d(x, np.ascontiguousarray(kernel[::-1, ::-1]), padding="same"))}


def sobel_similarity(filters: np.ndarray) -> np.ndarray:
    """|cosine| of each zero-mean 3x3 filter [3, 3, F] with zero-mean SOBEL_X and SOBEL_Y.

    Returns:
      [F, 2]: the similarity to (SOBEL_X, SOBEL_Y); 1 means a (scaled, signed) Sobel filter.
    """
    f = filters.reshape(9, -1)
    f = f - f.mean(0)
    sob = np.stack([ops.SOBEL_X.ravel(), ops.SOBEL_Y.ravel()], 1)  # zero-mean already
    num = np.abs(f.T @ sob)
    return num / np.maximum(np.linalg.norm(f, axis=0)[:, None] * np.linalg.norm(sob, axis=0),
                            1e-12)


def _identity_figure(image, maps, workdir):
    diff = maps["convolution"] - maps["correlation_flipped"]
    panels = [[image, EMBOSS, maps["correlation"]],
              [maps["convolution"], maps["correlation_flipped"], diff]]
    labels = ["test image", "kernel k (emboss)", "corr(x, k)", "conv(x, k)",
              "corr(x, flip(k))", "conv - corr(flip)"]
    fig = results.image_grid(
        panels, title=f"conv(x, k) = corr(x, flip(k)): max |difference| "
                      f"{np.abs(diff).max():.1e}; conv(x, k) != corr(x, k)",
        symmetric=True, cmap="RdBu_r", figsize=(8, 5.5))
    for ax, label in zip(fig.axes, labels):
        ax.set_title(label, fontsize=8)
    return results.save_png(fig, workdir, "figures/conv_vs_corr.png")


def run(workdir: str, settings: Settings = Settings(), *, command_line: str | None = None
        ) -> dict:
    """Trains the CNN (resumable, in ``workdir/cnn``), draws the maps, checks the identity,
    writes ``experiment.json``, CSVs and figures.

    Raises:
      AssertionError: if conv(x, k) and corr(x, flip(k)) differ beyond float rounding.
    """
    s = settings
    train_set, test_set = load_subsets(s.dataset, s.train_examples, s.test_examples)
    model, params, fit_results = train(
        f"{workdir}/cnn", "cnn", {"features": s.features, "dense_units": s.dense_units},
        train_set, test_set, epochs=s.epochs, seed=s.seed, patience=s.patience)
    x = test_set.images[: s.images].astype(np.float32) / 255.0
    _, feats = jax.jit(model.apply)({"params": params}, x)
    acts = np.asarray(feats["conv_1"])  # [n, H', W', F] after ReLU
    kernel = np.asarray(params["conv_1"]["kernel"])[:, :, 0, :]  # [3, 3, F]
    shown = min(s.maps, acts.shape[-1])
    names = test_set.info.class_names
    rows = [f"{names[int(y)]}" for y in test_set.labels[: s.images]]
    fig = results.image_grid(
        [[x[i, :, :, 0], *[acts[i, :, :, f] for f in range(shown)]] for i in range(s.images)],
        title=f"The trained CNN's first {shown} of {acts.shape[-1]} conv filters respond to "
              "local edges and blobs everywhere", row_labels=rows,
        col_labels=["input", *[f"#{f}" for f in range(shown)]], cmap="magma")
    fig_maps = results.save_png(fig, workdir, "figures/filter_maps.png")

    sobel_panels = []
    for i in range(s.images):
        gx, gy, mag = ops.sobel_edges(jnp.asarray(x[i, :, :, 0]))
        sobel_panels.append([x[i, :, :, 0], np.asarray(gx), np.asarray(gy), np.asarray(mag)])
    fig = results.image_grid(
        sobel_panels, title="Sobel filters: gx finds vertical edges, gy horizontal ones",
        row_labels=rows, col_labels=["input", "gx (SOBEL_X)", "gy (SOBEL_Y)", "magnitude"],
        cmap="RdBu_r", symmetric=True)
    fig_sobel = results.save_png(fig, workdir, "figures/sobel_maps.png")

    sim = sobel_similarity(kernel)
    filter_rows = [{"filter": f, "weight_norm": float(np.linalg.norm(kernel[..., f])),
                    "mean_response": float(acts[..., f].mean()),
                    "active_fraction": float((acts[..., f] > 0).mean()),
                    "cos_sobel_x": float(sim[f, 0]), "cos_sobel_y": float(sim[f, 1])}
                   for f in range(kernel.shape[-1])]
    table_filters = results.write_csv(workdir, "filters.csv", filter_rows)

    image = x[0, :, :, 0]
    maps = flip_identity(image, EMBOSS)
    flipped_gap = float(np.abs(maps["convolution"] - maps["correlation_flipped"]).max())
    plain_gap = float(np.abs(maps["convolution"] - maps["correlation"]).max())
    scale = float(np.abs(maps["convolution"]).max())
    if flipped_gap > 1e-5 * max(scale, 1.0):  # float32 rounding of a 9-term sum
        raise AssertionError(f"conv(x, k) != corr(x, flip(k)): max difference {flipped_gap}")
    table_identity = results.write_csv(workdir, "conv_vs_corr.csv", [
        {"comparison": "max |conv(x,k) - corr(x,flip(k))|", "value": flipped_gap},
        {"comparison": "max |conv(x,k) - corr(x,k)|", "value": plain_gap},
        {"comparison": "max |conv(x,k)|", "value": scale}])
    fig_identity = _identity_figure(image, maps, workdir)

    numbers = {"test_accuracy": fit_results["valid_accuracy"],
               "epochs": fit_results["epochs_run"], "best_epoch": fit_results["best_epoch"],
               "train_examples": len(train_set),
               "conv_minus_flipped_corr_max": flipped_gap, "conv_minus_corr_max": plain_gap,
               "best_cos_sobel_x": float(sim[:, 0].max()),
               "best_cos_sobel_y": float(sim[:, 1].max()),
               "filters": int(kernel.shape[-1])}
    finding = (f"After {fit_results['epochs_run']} epoch(s) (test accuracy "
               f"{fit_results['valid_accuracy']:.3f}) the first-layer maps are local edge and "
               f"blob detectors; the filter closest to Sobel x has |cos| "
               f"{numbers['best_cos_sobel_x']:.2f} (y: {numbers['best_cos_sobel_y']:.2f}). "
               f"conv(x, k) equals corr(x, flip(k)) to {flipped_gap:.1e} while it differs "
               f"from corr(x, k) by up to {plain_gap:.2f}.")
    return results.write_experiment(
        workdir, name=NAME, title="10. Activation maps; convolution vs cross-correlation",
        claim=CLAIM, quick=s.quick, finding=finding,
        tables=[("First-layer filters: response and similarity to Sobel", table_filters),
                ("Convolution vs cross-correlation on a test image", table_identity)],
        figures=[("First-layer activation maps", fig_maps), ("Sobel maps", fig_sobel),
                 ("Convolution vs cross-correlation", fig_identity)],
        numbers=numbers, command_line=command_line)
