"""Figures (matplotlib, Agg backend): training curves and the depth-sweep figure.

Importing this module selects the Agg backend (files only, no display) unless a backend was
chosen through ``MPLBACKEND``, as a Jupyter kernel does for its inline figures, which
``cnn_jax.training`` must not switch off in a notebook.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence

import matplotlib

if not os.environ.get("MPLBACKEND"):
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["plot_history", "plot_sweep", "plot_sweep_aggregate", "save_figure"]


def save_figure(fig, path: str, *, dpi: int = 150) -> None:
    """Saves ``fig`` atomically (temporary file + rename) at ``dpi`` and closes it."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    # a temporary name of its own, so that processes writing the same figure do not collide
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)


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


_STYLES = [dict(color=c, marker=m, linestyle=ls) for c, m, ls in zip(
    ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"),
    ("o", "s", "^", "D", "v", "P"), ("-", "--", "-.", ":", "-", "--"))]


def plot_sweep_aggregate(rows: Sequence[Mapping], param: str, path: str, *,
                         series: Sequence[str] = (), title: str | None = None) -> None:
    """Mean +- sample sd over seeds of the final metrics against ``param``, one panel each.

    Args:
      rows: ``training.sweep.aggregate`` rows (``M_mean``, ``M_sd``, ``n`` per grid point).
      param: the x axis (integer ticks when its values are integers).
      series: other swept names; one line per combination of their values (at most 6).
      title: the figure's claim; by default it names what is plotted and n.
    """
    groups: dict[tuple, list[Mapping]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in series), []).append(r)
    if len(groups) > len(_STYLES):
        raise ValueError(f"plot_sweep_aggregate draws at most {len(_STYLES)} series per panel, "
                         f"got {len(groups)} combinations of {list(series)}")
    ns = sorted({int(r["n"]) for r in rows})
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.5), sharex=True)
    panels = (("train_loss", "train loss"), ("valid_loss", "valid loss"),
              ("train_accuracy", "train accuracy"), ("valid_accuracy", "valid accuracy"))
    for ax, (metric, label) in zip(axes.flat, panels):
        for style, (key, group) in zip(_STYLES, groups.items()):
            xs = [r[param] for r in group]
            ax.errorbar(xs, [r[f"{metric}_mean"] for r in group],
                        yerr=[0.0 if r[f"{metric}_sd"] != r[f"{metric}_sd"] else r[f"{metric}_sd"]
                              for r in group], capsize=2, markersize=4, **style,
                        label=", ".join(f"{k}={v}" for k, v in zip(series, key)) or None)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if all(isinstance(r[param], int) for r in rows):
            ax.xaxis.get_major_locator().set_params(integer=True)
        if series:
            ax.legend(fontsize=8)
    for ax in axes[1]:
        ax.set_xlabel(param)
    n_text = "n = " + "/".join(map(str, ns)) + " seeds"
    fig.suptitle(title or f"Final loss and accuracy against {param} (mean +- sd, {n_text})")
    save_figure(fig, path)
