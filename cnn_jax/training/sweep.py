"""Sweeps over one hyper-parameter: one sub-run per value, a summary table and figure."""

from __future__ import annotations

import ast
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

from cnn_jax import io, plotting
from cnn_jax.config import TrainConfig
from cnn_jax.training.loop import fit, load_data, make_mesh

log = logging.getLogger(__name__)

COLUMNS = ("train_loss", "train_accuracy", "valid_loss", "valid_accuracy", "best_epoch",
           "epochs_run", "param_count", "wall_time", "status")


def parse_sweep(spec: str) -> tuple[str, list[Any]]:
    """``"num_layers=0:25"`` (range, optional ``:step``) or ``"lr=1e-3,1e-4"`` (list).

    Raises:
      ValueError: naming the spec, if it has neither form.
    """
    name, sep, values = spec.partition("=")
    if not sep or not name or not values:
        raise ValueError(f"sweep must look like 'name=start:stop[:step]' or 'name=v1,v2', "
                         f"got {spec!r}")
    try:
        if ":" in values:
            return name, list(range(*(int(v) for v in values.split(":"))))
        return name, [ast.literal_eval(v.strip()) for v in values.split(",")]
    except (ValueError, SyntaxError, TypeError) as e:
        raise ValueError(f"sweep values in {spec!r} are not numbers or literals: {e}") from None


def member_dir(workdir: str, name: str, value: Any) -> str:
    return os.path.join(workdir, f"{name}_{value}")


def run_sweep(config: TrainConfig, name: str, values: Sequence[Any], workdir: str, *,
              should_stop: Callable[[], bool] | None = None):
    """Runs ``config`` with ``name`` set to each value (finished members are skipped).

    The data is loaded and placed on the device once for all members. After every member
    ``summary.csv``, ``summary.md`` and ``figures/sweep.png`` are rewritten (atomically).

    Returns:
      One row per value: ``{name: value, **results}``.
    """
    if not values:
        raise ValueError(f"sweep over {name!r} has no values")
    mesh = make_mesh(config.num_devices)
    data = load_data(config, mesh)
    rows = []
    for value in values:
        log.info("sweep %s=%s", name, value)
        results = fit(config.replace(**{name: value}), member_dir(workdir, name, value),
                      data=data, mesh=mesh, should_stop=should_stop)
        rows.append({name: value, **results})
        write_summary(rows, name, workdir)
    return rows


def write_summary(rows, name: str, workdir: str) -> None:
    """``summary.csv``, ``summary.md`` and the loss/accuracy-vs-``name`` figure."""
    cols = (name, *COLUMNS)
    fmt = lambda v: f"{v:.4f}" if isinstance(v, float) else str(v)
    csv = [",".join(cols)] + [",".join(fmt(r[c]) for c in cols) for r in rows]
    md = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    md += ["| " + " | ".join(fmt(r[c]) for c in cols) + " |" for r in rows]
    io.atomic_write_text(os.path.join(workdir, "summary.csv"), "\n".join(csv) + "\n")
    io.atomic_write_text(os.path.join(workdir, "summary.md"), "\n".join(md) + "\n")
    plotting.plot_sweep(rows, name, os.path.join(workdir, "figures", "sweep.png"))
