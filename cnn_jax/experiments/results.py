"""What every experiment writes: ``experiment.json``, CSV tables and PNG figures, atomically.

The workdir layout is the contract the report reads (``cnn_jax.experiments.report``):
``experiment.json`` = {"name", "title", "claim", "command", "quick", "finding",
"tables": [{"title", "csv"}], "figures": [{"title", "png"}], "numbers": {key: value}},
with the CSV and PNG paths relative to the workdir. Figures are 8 x 4 in at 150 dpi.
"""

from __future__ import annotations

import csv
import io as _io
import os
from collections.abc import Mapping, Sequence
from typing import Any

from cnn_jax import io, plotting
from cnn_jax.plotting import plt

__all__ = ["DPI", "FIGSIZE", "command", "image_grid", "save_png", "write_csv", "write_experiment"]

FIGSIZE = (8.0, 4.0)
DPI = 150


def command(name: str, quick: bool = False) -> str:
    """The command that reproduces experiment ``name`` from its flagfile."""
    suffix = "_quick" if quick else ""
    return f"python scripts/{name}.py --flagfile=experiments/{name}{suffix}.flags"


def write_csv(workdir: str, relpath: str, rows: Sequence[Mapping[str, Any]]) -> str:
    """Writes ``rows`` (dicts with the same keys) as CSV; floats with 6 significant digits.

    Returns:
      ``relpath``, for the ``tables`` entry of ``experiment.json``.
    """
    if not rows:
        raise ValueError(f"rows for {relpath!r} must not be empty")
    buf = _io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in row.items()})
    io.atomic_write_text(os.path.join(workdir, relpath), buf.getvalue())
    return relpath


def save_png(fig, workdir: str, relpath: str) -> str:
    """Saves ``fig`` at ``DPI`` (atomically) and closes it; returns ``relpath``."""
    plotting.save_figure(fig, os.path.join(workdir, relpath), dpi=DPI)
    return relpath


def write_experiment(workdir: str, *, name: str, title: str, claim: str, quick: bool,
                     finding: str, tables: Sequence[tuple[str, str]],
                     figures: Sequence[tuple[str, str]], numbers: Mapping[str, Any],
                     command_line: str | None = None) -> dict[str, Any]:
    """Writes ``workdir/experiment.json`` (the report's contract) and returns its dict.

    Args:
      tables: ``(title, csv relpath)`` pairs; figures: ``(title, png relpath)`` pairs.
      command_line: the reproduce command (default ``command(name, quick)``).
    """
    for _, rel in (*tables, *figures):
        if not os.path.exists(os.path.join(workdir, rel)):
            raise FileNotFoundError(f"experiment {name!r} lists {rel!r}, which is not in "
                                    f"{workdir!r}")
    record = {
        "name": name, "title": title, "claim": claim,
        "command": command_line or command(name, quick), "quick": bool(quick),
        "finding": finding,
        "tables": [{"title": t, "csv": p} for t, p in tables],
        "figures": [{"title": t, "png": p} for t, p in figures],
        "numbers": dict(numbers),
    }
    io.write_json(os.path.join(workdir, "experiment.json"), record)
    return record


def image_grid(panels, *, title: str, row_labels=None, col_labels=None, cmap: str = "gray",
               symmetric: bool = False, figsize=FIGSIZE):
    """A figure of small images: ``panels[r][c]`` is a 2-D array (or None: an empty cell).

    Args:
      panels: rows of [H, W] arrays; each image gets its own colour range.
      title: the figure's claim.
      row_labels, col_labels: text left of each row / above each column.
      cmap: colour map; ``symmetric`` centres it on 0 (for signed weights and responses).

    Returns:
      The matplotlib figure (save it with ``save_png``).
    """
    import numpy as np

    rows, cols = len(panels), max(len(r) for r in panels)
    fig, axes = plt.subplots(rows, cols, figsize=figsize, squeeze=False)
    for r in range(rows):
        for c in range(cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            image = panels[r][c] if c < len(panels[r]) else None
            if image is None:
                ax.axis("off")
                continue
            image = np.asarray(image, np.float64)
            if symmetric:
                lim = float(np.abs(image).max()) or 1.0
                ax.imshow(image, cmap=cmap, vmin=-lim, vmax=lim)
            else:
                ax.imshow(image, cmap=cmap)
            if col_labels is not None and r == 0 and c < len(col_labels):
                ax.set_title(col_labels[c], fontsize=7)
            if row_labels is not None and c == 0:
                ax.set_ylabel(row_labels[r], fontsize=7)
    fig.suptitle(title, fontsize=10)
    return fig
