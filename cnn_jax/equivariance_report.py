"""The equivariance report: every layer and model under shifts, rotations and zooms.

``run_report`` sweeps each subject (a layer or a model, random init, or trained parameters
from a run's workdir) over the magnitudes of each transform family with
``equivariance.sweep`` and writes into ``workdir``:

* ``equivariance.csv``: one row per (subject, kind, stage, magnitude, relative error);
* ``equivariance.md``: a table of the final stage of every subject (and, for models, the
  last map-valued stage) at a few telling magnitudes;
* ``figures/<kind>.png``: error against magnitude, one line per subject (final stage);
  ``figures/stages_<subject>.png``: one panel per kind, one line per stage.

Inputs are smooth random images (white noise low-passed by a Gaussian, periodic, unit
variance): interpolation is accurate on them, so what remains is the subject's own error.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import time
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import numpy as np

import cnn_jax.models.gcnn  # noqa: F401  (registers p4cnn, p4mcnn)
import cnn_jax.models.lcn  # noqa: F401
import cnn_jax.models.sesn  # noqa: F401
from cnn_jax import equivariance, layers, models, ops
from cnn_jax.io import atomic_write_text

__all__ = [
    "DEFAULT_MAGNITUDES",
    "FunctionModule",
    "Subject",
    "default_subjects",
    "check_magnitudes",
    "check_traceable",
    "markdown_table",
    "run_report",
    "select_subjects",
    "smooth_images",
    "stage_order",
    "trained_subject",
]

DEFAULT_MAGNITUDES = {
    "shift": (0, 1, 2, 3, 4),
    "rotate": (0.0, 15.0, 30.0, 45.0, 60.0, 90.0, 135.0, 180.0, 225.0, 270.0, 315.0),
    "scale": (0.5, 0.6, 0.71, 0.84, 1.0, 1.19, 1.41, 1.68, 2.0),
}
# the magnitudes shown in the Markdown table: (kind, magnitude, column title)
TABLE_COLUMNS = (
    ("shift", 1, "shift 1 px"),
    ("shift", 2, "shift 2 px"),
    ("rotate", 45.0, "rot 45°"),
    ("rotate", 90.0, "rot 90°"),
    ("scale", 0.71, "zoom 0.71"),
    ("scale", 1.41, "zoom 1.41"),
)


class FunctionModule(nn.Module):
    """Wraps a parameter-free function [N, H, W, C] -> array as a module."""

    fn: Callable

    def __call__(self, x):
        return self.fn(x)


@dataclasses.dataclass(frozen=True)
class Subject:
    """Something to measure: a module taking [N, H, W, C], and how its group axis acts.

    Attributes:
      name: row name.
      module: the Flax module (a layer returns an array, a model ``(logits, features)``).
      group: what the trailing axis of rank-5 outputs is: "p4", "p4m", "scale" or None.
      scale_ratio: neighbouring-scale ratio for ``group="scale"``.
      scale_reach: for ``group="scale"``: scales above its own that an output scale reads,
        {stage: int} or one int (``equivariance.sweep`` leaves out the scales where that
        leaves the ladder).
      params: trained variables; None draws random ones.
    """

    name: str
    module: nn.Module
    group: str | None = None
    scale_ratio: float | None = None
    params: object = None
    scale_reach: object = 0


def default_subjects(conv_impl: str = "auto") -> list[Subject]:
    """The layer and model zoo, small enough to sweep in about a minute on two CPU cores."""
    relu = nn.relu
    root2 = 2**0.5
    lift = lambda g: layers.LiftingConv(8, group=g, impl=conv_impl)
    gconv = lambda g: layers.GroupConv(8, group=g, impl=conv_impl)
    slift = layers.ScaleLiftingConv(8, sigma0=0.8, ratio=root2, impl=conv_impl)
    sconv = layers.ScaleConv(8, sigma0=0.8, ratio=root2, impl=conv_impl)
    return [
        Subject("conv3x3 circular", layers.Conv2D(8, 3, padding="circular", impl=conv_impl)),
        Subject("conv3x3 same", layers.Conv2D(8, 3, padding="same", impl=conv_impl)),
        Subject("locally connected", layers.LocallyConnected2D(8, 3, padding="circular")),
        Subject("max-pool 2", FunctionModule(lambda x: ops.max_pool2d(x, 2))),
        Subject("max-blur-pool 2", layers.MaxBlurPool(padding="circular", impl=conv_impl)),
        Subject("p4 lifting", lift("p4"), group="p4"),
        Subject("p4 group conv", nn.Sequential([lift("p4"), relu, gconv("p4")]), group="p4"),
        Subject("p4 group pool",
                nn.Sequential([lift("p4"), relu, gconv("p4"), layers.GroupPool()])),
        Subject("p4m group conv", nn.Sequential([lift("p4m"), relu, gconv("p4m")]), group="p4m"),
        Subject("scale lifting", slift, group="scale", scale_ratio=root2),
        Subject("scale conv", nn.Sequential([slift, relu, sconv]), group="scale",
                scale_ratio=root2),
        Subject("mlp", models.get("mlp", num_layers=1, units=128)),
        Subject("cnn", models.get("cnn", conv_impl=conv_impl)),
        Subject("cnn gap", models.get("cnn", padding="same", head="gap", conv_impl=conv_impl)),
        Subject("lcn", models.get("lcn")),
        Subject("p4cnn", models.get("p4cnn", conv_impl=conv_impl), group="p4"),
        Subject("p4mcnn", models.get("p4mcnn", conv_impl=conv_impl), group="p4m"),
        _scale_model_subject("sesn", models.get("sesn", conv_impl=conv_impl)),
    ]


def select_subjects(names: Sequence[str], conv_impl: str = "auto") -> list[Subject]:
    """The zoo subjects called ``names`` (all of them when ``names`` is empty), in zoo order.

    Raises:
      ValueError: a name that is not in the zoo (the message lists the zoo).
    """
    zoo = default_subjects(conv_impl)
    unknown = [n for n in names if n not in {s.name for s in zoo}]
    if unknown:
        raise ValueError(f"unknown subject(s) {', '.join(map(repr, unknown))}; known: "
                         + ", ".join(s.name for s in zoo))
    return [s for s in zoo if not names or s.name in names]


def check_magnitudes(kind: str, values: Sequence) -> tuple[float, ...]:
    """A sweep's magnitudes as floats: finite, and zoom factors > 0.

    Raises:
      ValueError: an unknown ``kind``, an empty list, or a value that is not allowed.
    """
    if kind not in equivariance.KINDS:
        raise ValueError(f"kind must be one of {equivariance.KINDS}, got {kind!r}")
    allowed = {"shift": "finite shifts in pixels", "rotate": "finite angles in degrees",
               "scale": "zoom factors > 0"}[kind]
    if len(values) == 0:
        raise ValueError(f"empty; expected one or more {allowed}")
    out = []
    for v in values:
        try:
            m = float(v)
        except (TypeError, ValueError):
            raise ValueError(f"{v!r} is not a number; expected {allowed}") from None
        if not np.isfinite(m) or (kind == "scale" and m <= 0):
            raise ValueError(f"{v!r} is not allowed; expected {allowed}")
        out.append(m)
    return tuple(out)


def check_traceable(subject: Subject, shape: Sequence[int], seed: int = 0) -> None:
    """Traces ``subject`` on an abstract input of ``shape`` (no compilation, no FLOPs).

    Catches, before any work, inputs too small for a network and trained parameters that do
    not fit their model.

    Raises:
      ValueError: the subject cannot be applied to [N, H, W, C] inputs of ``shape``.
    """
    x = jax.ShapeDtypeStruct(tuple(shape), np.float32)
    try:
        if subject.params is None:
            variables = jax.eval_shape(
                lambda a: subject.module.init(jax.random.key(seed), a), x)
        else:
            variables = _as_variables(subject.params)
        jax.eval_shape(subject.module.apply, variables, x)
    except Exception as e:  # any failure to trace means this input cannot work
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{subject.name!r} cannot take inputs of shape {list(shape)} "
                         f"({type(e).__name__}: {first[:200]})") from e


def _scale_model_subject(name: str, module, params=None) -> Subject:
    return Subject(name, module, group="scale", scale_ratio=module.ratio, params=params,
                   scale_reach=module.scale_reach())


def smooth_images(shape: Sequence[int], *, sigma: float = 2.0, seed: int = 0) -> np.ndarray:
    """[N, H, W, C] float32 periodic Gaussian-smoothed noise with unit standard deviation."""
    if len(shape) != 4:
        raise ValueError(f"shape must be [N, H, W, C], got {tuple(shape)}")
    noise = np.random.default_rng(seed).standard_normal(shape)
    fy = np.fft.fftfreq(shape[1])[:, None]
    fx = np.fft.fftfreq(shape[2])[None, :]
    lowpass = np.exp(-2 * (np.pi * sigma) ** 2 * (fy**2 + fx**2))
    x = np.real(np.fft.ifft2(np.fft.fft2(noise, axes=(1, 2)) * lowpass[None, :, :, None],
                             axes=(1, 2)))
    return (x / x.std()).astype(np.float32)


def stage_order(module: nn.Module, params, x) -> list[str]:
    """Names of the stages ``module`` returns, in network order ("output" for a layer)."""
    order: list[str] = []

    def trace(p, a):
        out = module.apply(p, a)
        order[:] = list(equivariance.as_stages(out))
        return out

    jax.eval_shape(trace, params, x)
    return order


def _as_variables(params):
    return params if isinstance(params, dict) and "params" in params else {"params": params}


def _variables(subject: Subject, x, seed: int):
    if subject.params is None:
        return equivariance.random_parameters(subject.module, x.shape, seed)
    return _as_variables(subject.params)


def _measure(subject: Subject, x, magnitudes, seed: int):
    """(stage names in order, {stage: shape}, rows) for one subject."""
    params = _variables(subject, x, seed)
    apply = jax.jit(subject.module.apply)
    f = lambda a: apply(params, a)
    order = stage_order(subject.module, params, x)
    out = jax.eval_shape(f, x)
    shapes = {name: a.shape for name, a in equivariance.as_stages(out).items()}
    rows = []
    for kind, mags in magnitudes.items():
        curves = equivariance.sweep(f, x, kind, mags, group=subject.group,
                                    scale_ratio=subject.scale_ratio,
                                    scale_reach=subject.scale_reach)
        for stage in order:
            rows += [(subject.name, kind, stage, float(m), float(e))
                     for m, e in zip(mags, curves[stage], strict=True)]
    return order, shapes, rows


def _final_stages(order: Sequence[str], shapes: dict) -> list[str]:
    """The output stage, plus the last map-valued stage for models."""
    last = order[-1]
    maps = [s for s in order if len(shapes[s]) >= 4]
    return [last] if not maps or maps[-1] == last else [maps[-1], last]


def markdown_table(rows, finals: dict[str, list[str]]) -> str:
    """Markdown table of the ``finals`` stages of each subject at ``TABLE_COLUMNS``."""
    lookup = {(r[0], r[1], r[2], r[3]): r[4] for r in rows}
    head = "| subject | stage | " + " | ".join(c[2] for c in TABLE_COLUMNS) + " |"
    lines = [head, "|" + "---|" * (len(TABLE_COLUMNS) + 2)]
    for subject, stages in finals.items():
        for stage in stages:
            cells = []
            for kind, mag, _ in TABLE_COLUMNS:
                err = lookup.get((subject, kind, stage, float(mag)))
                cells.append("" if err is None else f"{err:.2e}" if err < 1e-3 else f"{err:.3f}")
            lines.append(f"| {subject} | {stage} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _csv_text(rows) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["subject", "kind", "stage", "magnitude", "relative_error"])
    writer.writerows((s, k, st, m, f"{e:.6g}") for s, k, st, m, e in rows)
    return buf.getvalue()


def _figures(rows, finals, figdir: str, magnitudes) -> list[str]:
    from cnn_jax import plotting  # matplotlib only when figures are drawn

    plt = plotting.plt
    paths = []
    units = {"shift": "shift (px, down and right)", "rotate": "angle (degrees)",
             "scale": "zoom factor"}
    for kind in magnitudes:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for subject, stages in finals.items():
            pts = [(r[3], r[4]) for r in rows if r[:3] == (subject, kind, stages[-1])]
            ax.plot(*zip(*pts), marker="o", ms=3, label=f"{subject} ({stages[-1]})")
        ax.set(xlabel=units[kind], ylabel="relative error ||f(gx) - g'f(x)|| / ||g'f(x)||",
               title=f"equivariance under {kind}")
        ax.set_yscale("symlog", linthresh=1e-6)
        ax.legend(fontsize=6, ncol=2)
        paths.append(os.path.join(figdir, f"{kind}.png"))
        plotting.save_figure(fig, paths[-1])
    for subject in finals:
        stages = list(dict.fromkeys(r[2] for r in rows if r[0] == subject))
        if len(stages) < 2:
            continue
        fig, axes = plt.subplots(1, len(magnitudes), figsize=(4 * len(magnitudes), 3.5))
        for ax, kind in zip(np.atleast_1d(axes), magnitudes, strict=True):
            for stage in stages:
                pts = [(r[3], r[4]) for r in rows if r[:3] == (subject, kind, stage)]
                ax.plot(*zip(*pts), marker="o", ms=3, label=stage)
            ax.set(xlabel=units[kind], title=f"{subject}: {kind}")
            ax.set_yscale("symlog", linthresh=1e-6)
        np.atleast_1d(axes)[0].set_ylabel("relative error")
        np.atleast_1d(axes)[-1].legend(fontsize=7)
        slug = "".join(c if c.isalnum() else "_" for c in subject)
        paths.append(os.path.join(figdir, f"stages_{slug}.png"))
        plotting.save_figure(fig, paths[-1])
    return paths


def run_report(workdir: str, subjects: Sequence[Subject], *, image_size: int = 28,
               channels: int = 1, batch: int = 2, sigma: float = 2.0, seed: int = 0,
               magnitudes: dict[str, Sequence[float]] | None = None,
               figures: bool = True, log: Callable[[str], None] = print) -> dict:
    """Measures every subject, writes the CSV, Markdown table and figures into ``workdir``.

    Args:
      workdir: output folder (created).
      subjects: what to measure (``default_subjects()`` and trained ones).
      image_size, channels, batch: the [batch, size, size, channels] smooth input.
      sigma: input smoothness (Gaussian std in pixels).
      seed: seeds the input and the random parameters.
      magnitudes: {kind: magnitudes}; defaults to ``DEFAULT_MAGNITUDES``.
      figures: draw the figures.
      log: progress messages.

    Returns:
      {"rows": [(subject, kind, stage, magnitude, error)], "table": Markdown text,
       "files": written paths, "seconds": wall time}.
    """
    if not subjects:
        raise ValueError("subjects must not be empty")
    magnitudes = dict(DEFAULT_MAGNITUDES if magnitudes is None else magnitudes)
    for kind in magnitudes:
        if kind not in equivariance.KINDS:
            raise ValueError(f"magnitudes keys must be in {equivariance.KINDS}, got {kind!r}")
    start = time.perf_counter()
    x = smooth_images((batch, image_size, image_size, channels), sigma=sigma, seed=seed)
    rows, finals = [], {}
    for subject in subjects:
        t0 = time.perf_counter()
        order, shapes, subject_rows = _measure(subject, x, magnitudes, seed)
        finals[subject.name] = _final_stages(order, shapes)
        rows += subject_rows
        log(f"{subject.name}: {len(order)} stages, {time.perf_counter() - t0:.1f} s")
    os.makedirs(workdir, exist_ok=True)
    table = markdown_table(rows, finals)
    files = [os.path.join(workdir, "equivariance.csv"), os.path.join(workdir, "equivariance.md")]
    atomic_write_text(files[0], _csv_text(rows))
    intro = (f"Relative error ||f(g x) - g' f(x)|| / ||g' f(x)|| on a central disk (maps) or "
             f"whole (logits: invariance), {batch} smooth random {image_size}x{image_size}x"
             f"{channels} images (sigma {sigma}), seed {seed}.\n\n")
    atomic_write_text(files[1], intro + table)
    if figures:
        files += _figures(rows, finals, os.path.join(workdir, "figures"), magnitudes)
    return {"rows": rows, "table": table, "files": files,
            "seconds": time.perf_counter() - start}


def trained_subject(model_name: str, model_kwargs: dict, params) -> Subject:
    """A subject for a trained model (e.g. from ``training.restore``).

    ``num_classes`` is read off the head's kernel when the run's kwargs leave it out.
    """
    variables = _as_variables(params)
    kwargs = dict(model_kwargs)
    head = variables["params"].get("head", {}) if hasattr(variables["params"], "get") else {}
    if "num_classes" not in kwargs and "kernel" in head:
        kwargs["num_classes"] = int(head["kernel"].shape[-1])
    module = models.get(model_name, **kwargs)
    if model_name == "sesn":
        return _scale_model_subject(f"trained {model_name}", module, variables)
    group = {"p4cnn": "p4", "p4mcnn": "p4m"}.get(model_name)
    return Subject(f"trained {model_name}", module, group=group, params=variables)
