"""Sweeps: a grid over config fields and model arguments, one resumable sub-run per member.

A sweep is a list of axes ``[(name, values), ...]``; its members are the grid product (the
first axis outermost). Each member is an ordinary ``fit`` in ``workdir/<member>/`` (named by
all its swept values, e.g. ``num_layers_3-seed_0``), so finished members are skipped and an
interrupted one resumes. After every member the sweep writes ``summary.csv``/``summary.md``
(one row per finished member) and, when ``seed`` is an axis, ``aggregate.csv`` (mean, sample
standard deviation and n of every metric over the seeds of each grid point) and
``figures/sweep.png`` (loss and accuracy against the first non-seed axis, seeds as error bars).
"""

from __future__ import annotations

import ast
import dataclasses
import itertools
import logging
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from cnn_jax import io, models, plotting
from cnn_jax.config import TrainConfig, config_diff
from cnn_jax.training.loop import FINISHED, fit, load_data, make_mesh, saved_config
from cnn_jax.training.seeds import fit_seeds, member_configs

log = logging.getLogger(__name__)

COLUMNS = ("train_loss", "train_accuracy", "valid_loss", "valid_accuracy", "best_epoch",
           "epochs_run", "param_count", "wall_time", "status")
METRICS = ("train_loss", "train_accuracy", "valid_loss", "valid_accuracy", "best_epoch",
           "epochs_run", "param_count", "wall_time")
# Config fields that change the data a run sees: members differing in them load their own.
DATA_FIELDS = ("dataset", "data_dir", "validation", "validation_fraction", "standardize")
FORMS = ("START:STOP[:STEP] (integers), lin:A:B:N, log:A:B:N, V1|V2|... (literals, tuples "
         "too) or V1,V2,... (scalars)")
SYNTAX = """\
name=START:STOP[:STEP]    integers, as Python's range (STOP excluded): num_layers=0:25
name=lin:A:B:N            N floats evenly spaced from A to B (both included)
name=log:A:B:N            N floats log-spaced from A to B: learning_rate=log:1e-4:1e-2:3
name=V1|V2|...            Python literals, tuples included: features=(8,16)|(16,32)
name=V1,V2,...            scalar literals: learning_rate=1e-3,1e-2
A bare word is a string (activation=elu|relu). NAME is a TrainConfig field or an argument of
the model; repeat the flag to sweep a grid (--sweep=num_layers=0:25 --sweep=seed=0:3)."""

Axis = tuple[str, list[Any]]


def _literal(text: str) -> Any:
    text = text.strip()
    if not text:
        raise ValueError("an empty value")
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        if text.isidentifier():
            return text  # a bare word such as elu
        raise ValueError(f"{text!r} is not a Python literal") from None


def _spaced(kind: str, parts: list[str]) -> list[float]:
    if len(parts) != 3:
        raise ValueError(f"{kind}: takes A:B:N")
    a, b, n = float(parts[0]), float(parts[1]), int(parts[2])
    if n < 1:
        raise ValueError(f"{kind}: N must be >= 1, got {n}")
    if kind == "lin":
        return [float(v) for v in np.linspace(a, b, n)]
    if a <= 0 or b <= 0:
        raise ValueError("log: A and B must be > 0")
    return [float(v) for v in np.geomspace(a, b, n)]


def parse_sweep(spec: str) -> Axis:
    """One ``--sweep`` value -> ``(name, values)``; the syntax is ``SYNTAX``.

    >>> parse_sweep("num_layers=0:3")
    ('num_layers', [0, 1, 2])
    >>> parse_sweep("learning_rate=log:1e-4:1e-2:3")
    ('learning_rate', [0.0001, 0.001, 0.01])
    >>> parse_sweep("features=(8, 16)|(16, 32)")
    ('features', [(8, 16), (16, 32)])

    Raises:
      ValueError: one line naming what is wrong and the accepted forms.
    """
    name, sep, text = spec.partition("=")
    name, text = name.strip(), text.strip()
    if not sep or not name.isidentifier() or not text:
        raise ValueError(f"expected NAME=VALUES with VALUES one of {FORMS}")
    try:
        head, *rest = text.split(":")
        if head in ("lin", "log"):
            values = _spaced(head, rest)
        elif rest:
            values = list(range(*(int(v) for v in text.split(":"))))
        elif "|" in text:
            values = [_literal(v) for v in text.split("|")]
        else:
            values = [_literal(v) for v in text.split(",")]
    except (ValueError, TypeError) as e:
        raise ValueError(f"{e}; VALUES must be one of {FORMS}") from None
    if not values:
        raise ValueError("the range has no values")
    return name, values


def check_axes(config: TrainConfig, axes: Sequence[Axis]) -> None:
    """Raises ValueError unless every axis names a config field or a model argument, once.

    Raises:
      ValueError: one line naming the bad name (``"'NAME' is swept twice"`` or what is allowed).
    """
    fields = {f.name for f in dataclasses.fields(TrainConfig)} - {"model_kwargs",
                                                                   "early_stopping"}
    arguments = set(models.arguments(config.model)) - {"num_classes"}
    names = [name for name, _ in axes]
    if config.num_seeds > 1 and {"seed", "num_seeds"} & set(names):
        raise ValueError(f"num_seeds={config.num_seeds} trains seeds {config.seed}.."
                         f"{config.seed + config.num_seeds - 1} itself: sweep neither seed "
                         "nor num_seeds with it")
    for name in names:
        if names.count(name) > 1:
            raise ValueError(f"{name!r} is swept twice")
        if name not in fields and name not in arguments:
            raise ValueError(f"{name!r} is neither a config field nor an argument of model "
                             f"{config.model!r}; config fields: {', '.join(sorted(fields))}; "
                             f"model arguments: {', '.join(sorted(arguments))}")


def members(axes: Sequence[Axis]) -> list[dict[str, Any]]:
    """The grid product of ``axes``, first axis outermost: ``[{name: value, ...}, ...]``."""
    names = [name for name, _ in axes]
    return [dict(zip(names, combo)) for combo in itertools.product(*(v for _, v in axes))]


def _value_name(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return "x".join(_value_name(v) for v in value) or "empty"
    return str(value).replace(os.sep, "_")


def member_dir(workdir: str, assignment: dict[str, Any]) -> str:
    """``workdir/name1_v1-name2_v2``; tuple values are joined by ``x`` (``features_8x16``)."""
    return os.path.join(workdir, "-".join(f"{k}_{_value_name(v)}"
                                          for k, v in assignment.items()))


def run_sweep(config: TrainConfig, axes: Sequence[Axis], workdir: str, *,
              should_stop: Callable[[], bool] | None = None) -> list[dict[str, Any]]:
    """Runs ``config`` at every member of the grid ``axes`` (finished members are skipped).

    With ``config.num_seeds`` > 1 every grid point trains its seeds in one vectorised
    program (``fit_seeds``) into ``<point>-seed_K`` folders, as if ``seed`` were the last
    axis; ``axes`` may then be empty (``workdir/seed_K``).

    The data is loaded and placed on the device once per distinct data configuration (once
    for the whole sweep unless a data field, or ``seed`` with a holdout split, is swept).

    Returns:
      One row per member: ``{name: value, ..., **results}``.
    """
    check_axes(config, axes)
    mesh = make_mesh(config.num_devices)
    loaded: dict[tuple, Any] = {}
    rows = []
    names = [name for name, _ in axes] + (["seed"] if config.num_seeds > 1 else [])
    grid = members(axes)
    for i, assignment in enumerate(grid):
        member = config.replace(**assignment)
        key = tuple(getattr(member, f) for f in DATA_FIELDS) + (
            (member.seed,) if member.validation == "holdout" else ())
        if key not in loaded:
            loaded.clear()  # keep one data set on the device at a time
            loaded[key] = load_data(member, mesh)
        log.info("sweep %s", assignment)
        if config.num_seeds > 1:
            seeds = [c.seed for c in member_configs(member)]
            dirs = [member_dir(workdir, {**assignment, "seed": s}) for s in seeds]
            results = fit_seeds(member, dirs, data=loaded[key], mesh=mesh,
                                should_stop=should_stop)
            rows += [{**assignment, "seed": s, **r} for s, r in zip(seeds, results)]
        else:
            results = fit(member, member_dir(workdir, assignment), data=loaded[key],
                          mesh=mesh, should_stop=should_stop)
            rows.append({**assignment, **results})
        # the summary also holds the members further on that an earlier run finished
        write_summary(rows + _finished_members(config, grid[i + 1:], workdir), names, workdir)
    return rows


def _finished_members(config: TrainConfig, grid: Sequence[dict[str, Any]], workdir: str
                      ) -> list[dict[str, Any]]:
    """Rows ``{name: value, ..., **results}`` of the members of ``grid`` (and, with
    ``num_seeds`` > 1, their seeds) whose folders hold a finished run of their own config."""
    rows = []
    for assignment in grid:
        member = config.replace(**assignment)
        for one in (member_configs(member) if config.num_seeds > 1 else [member]):
            point = {**assignment, "seed": one.seed} if config.num_seeds > 1 else assignment
            folder = member_dir(workdir, point)
            try:
                saved = saved_config(folder)
                if saved is None or config_diff(saved, one.to_dict()):
                    continue
                results = io.read_json(os.path.join(folder, "results.json"))
            except (OSError, ValueError):  # unfinished or unreadable: its turn will tell
                continue
            if results.get("status") in FINISHED:
                rows.append({**point, **results})
    return rows


def aggregate(rows: Sequence[dict[str, Any]], names: Sequence[str],
              over: str = "seed") -> list[dict[str, Any]]:
    """Mean, sample sd (``nan`` for n = 1) and n of ``METRICS`` over ``over``, per grid point.

    Args:
      rows: summary rows (swept names + results).
      names: the swept names; the grid point is all of them except ``over``.

    Returns:
      One row per grid point, in first-seen order: ``{name: value, M_mean, M_sd, ..., n}``.
    """
    keys = [n for n in names if n != over]
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(tuple(repr(r[k]) for k in keys), []).append(r)
    out = []
    for group in groups.values():
        row = {k: group[0][k] for k in keys}
        for m in METRICS:
            values = np.array([float(r[m]) for r in group])
            row[f"{m}_mean"] = float(values.mean())
            row[f"{m}_sd"] = float(values.std(ddof=1)) if len(values) > 1 else math.nan
        row["n"] = len(group)
        out.append(row)
    return out


def _fmt(v: Any, float_format: str = ".4f") -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else format(v, float_format)
    if isinstance(v, (tuple, list)):
        return "x".join(_fmt(x, float_format) for x in v)
    return str(v)


def _tables(rows: Sequence[dict[str, Any]], cols: Sequence[str]) -> tuple[str, str]:
    """The rows as CSV (7 significant digits) and as a Markdown table (4 decimals)."""
    csv = [",".join(cols)] + [",".join(_fmt(r[c], ".7g") for c in cols) for r in rows]
    md = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    md += ["| " + " | ".join(_fmt(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(csv) + "\n", "\n".join(md) + "\n"


def write_summary(rows: Sequence[dict[str, Any]], names: Sequence[str], workdir: str) -> None:
    """``summary.csv``/``summary.md``, ``aggregate.csv`` (if ``seed`` is swept) and the figure."""
    csv, md = _tables(rows, (*names, *COLUMNS))
    io.atomic_write_text(os.path.join(workdir, "summary.csv"), csv)
    figure = os.path.join(workdir, "figures", "sweep.png")
    keys = [n for n in names if n != "seed"]
    if "seed" in names:
        agg = aggregate(rows, names)
        cols = (*keys, *(f"{m}_{s}" for m in METRICS for s in ("mean", "sd")), "n")
        agg_csv, agg_md = _tables(agg, cols)
        io.atomic_write_text(os.path.join(workdir, "aggregate.csv"), agg_csv)
        md += "\n## Mean and sample sd over seeds\n\n" + agg_md
    if "seed" in names and keys:
        plotting.plot_sweep_aggregate(agg, keys[0], figure, series=keys[1:])
    else:
        plotting.plot_sweep(rows, names[0], figure)
    io.atomic_write_text(os.path.join(workdir, "summary.md"), md)
