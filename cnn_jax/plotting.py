"""Figures (matplotlib, Agg backend): training curves and the depth-sweep figure.

Importing this module selects the Agg backend (files only, no display) unless a backend was
chosen through ``MPLBACKEND``, as a Jupyter kernel does for its inline figures, which
``cnn_jax.training`` must not switch off in a notebook.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import matplotlib

if not os.environ.get("MPLBACKEND"):
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["plot_history", "plot_sweep", "save_figure"]


def save_figure(fig, path: str) -> None:
    """Saves ``fig`` atomically (temporary file + rename) and closes it."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    root, ext = os.path.splitext(path)
    tmp = f"{root}.tmp{ext}"
    fig.savefig(tmp, dpi=120, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, path)


def plot_history(history: Sequence[Mapping[str, float]], path: str) -> None:
    """Loss and accuracy per epoch, train and validation (``metrics.jsonl`` rows)."""
    epochs = [r["epoch"] for r in history]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, name in zip(axes, ("loss", "accuracy")):
        ax.plot(epochs, [r[name] for r in history], "o-", label="train")
        ax.plot(epochs, [r[f"val_{name}"] for r in history], "s-", label="valid")
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.legend()
        ax.grid(alpha=0.3)
    save_figure(fig, path)


def plot_sweep(rows: Sequence[Mapping[str, float]], param: str, path: str) -> None:
    """The lecture's figure: final train/valid loss and accuracy against ``param``."""
    xs = [r[param] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, name in zip(axes, ("loss", "accuracy")):
        ax.plot(xs, [r[f"train_{name}"] for r in rows], "o-", label="train")
        ax.plot(xs, [r[f"valid_{name}"] for r in rows], "s-", label="valid")
        ax.set_xlabel(param)
        ax.set_ylabel(name)
        ax.legend()
        ax.grid(alpha=0.3)
    save_figure(fig, path)
