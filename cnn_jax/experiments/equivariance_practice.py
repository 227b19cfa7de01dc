"""Experiment 8: equivariance in practice.

An MLP, a CNN, a P4 CNN and a scale-equivariant CNN are trained on upright images and then
scored on test images shifted by 0..k pixels, rotated by 0..360 degrees and zoomed by
0.5..2 (``robustness.accuracy_sweep``); the equivariance error of every stage of each
trained model is measured by the equivariance report (``equivariance_report.run_report``
on the trained parameters, as ``scripts/equivariance.py --checkpoint`` does).

``run(config)`` writes into ``config.workdir``: one training sub-run per model
(``model_NAME/``), ``accuracy.csv`` (model, kind, magnitude, accuracy),
``figures/accuracy.png`` (one panel per transform, one curve per model), ``params.csv``,
``equivariance/`` (the report's CSV, Markdown and figures), ``equivariance_summary.csv`` and
``experiment.json``.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from cnn_jax import data as datasets
from cnn_jax import equivariance_report, io
from cnn_jax.config import TrainConfig
from cnn_jax.experiments import checks, robustness, subruns
from cnn_jax.io import atomic_write_text
from cnn_jax.training import DeviceData
from cnn_jax.training.restore import restore_params

__all__ = ["DEFAULT_MODELS", "PracticeConfig", "check_model", "run"]

NAME = "equivariance_practice"
DEFAULT_MODELS = {
    "mlp": {"num_layers": 1, "units": 512},
    "cnn": {"features": (32, 64), "dense_units": (128,)},
    "p4cnn": {"features": (8, 16, 32)},
    "sesn": {"features": (8, 16, 32), "kernel_size": 7, "pool": "max"},
}
DEFAULT_SWEEPS = {
    "shift": tuple(range(0, 7)),
    "rotate": tuple(float(a) for a in range(0, 361, 30)),
    "scale": (0.5, 0.6, 0.71, 0.84, 1.0, 1.19, 1.41, 1.68, 2.0),
}
# (kind, magnitude) pairs quoted in experiment.json
KEY_POINTS = (("shift", 2), ("shift", 4), ("rotate", 45.0), ("rotate", 90.0), ("rotate", 180.0),
              ("scale", 0.71), ("scale", 1.41))


@dataclasses.dataclass(frozen=True)
class PracticeConfig:
    """The experiment's settings.

    Attributes:
      workdir: output folder.
      dataset, data_dir: the images (``cnn_jax.data.load``).
      n_train: training images (a seeded subset of the train split).
      n_eval: test images scored under every transform (the first of the test split; also
        the validation set of training, which selects nothing: no early stopping).
      models: {registry name: hyper-parameters}.
      sweeps: {"shift" (px), "rotate" (degrees), "scale" (factor): magnitudes}.
      epochs, batch_size, learning_rate, seed: Adam training of every model.
      equivariance_batch: smooth random images per feature-level equivariance measurement.
      equivariance_magnitudes: {kind: magnitudes} of the feature-level measurement (None:
        the equivariance report's defaults).
      quick: a smoke-test run (recorded); command: the reproducing command (recorded).
    """

    workdir: str
    dataset: str = "fashion_mnist"
    data_dir: str | None = None
    n_train: int = 10_000
    n_eval: int = 1_000
    models: Mapping[str, Mapping[str, Any]] = dataclasses.field(
        default_factory=lambda: dict(DEFAULT_MODELS))
    sweeps: Mapping[str, Sequence[float]] = dataclasses.field(
        default_factory=lambda: dict(DEFAULT_SWEEPS))
    epochs: int = 3
    batch_size: int = 128
    learning_rate: float = 3e-3
    seed: int = 0
    equivariance_batch: int = 2
    equivariance_magnitudes: Mapping[str, Sequence[float]] | None = None
    quick: bool = False
    command: str = ""

    def __post_init__(self):
        """Checks every field; ``checks.FlagError`` names the script's flag (a model argument
        ``ARG`` of model ``M`` is ``--M_ARG``, a sweep ``--shifts``, ``--angles``, ``--zooms``)."""
        checks.dataset("dataset", self.dataset)
        if self.data_dir is not None:
            checks.folder("data_dir", self.data_dir)
        checks.examples("n_train", self.n_train,
                        checks.split_size(self.dataset, "train", self.data_dir), low=1,
                        what="train examples")
        checks.examples("n_eval", self.n_eval,
                        checks.split_size(self.dataset, "test", self.data_dir), low=1,
                        what="test examples")
        if not self.models:
            raise checks.FlagError("models", "", "empty; expected one or more models")
        for model, kwargs in self.models.items():
            check_model(model, kwargs)
        if not self.sweeps:
            raise checks.FlagError("sweeps", "", f"empty; expected one or more of "
                                                 f"{robustness.KINDS}")
        for magnitudes in (self.sweeps, self.equivariance_magnitudes or {}):
            for kind, values in magnitudes.items():
                _check_magnitudes(kind, values)
        checks.positive(self, "epochs", "batch_size", "equivariance_batch")
        checks.number("learning_rate", self.learning_rate, 0, low_open=True)
        checks.seed("seed", self.seed)


SWEEP_FLAGS = {"shift": "shifts", "rotate": "angles", "scale": "zooms"}
POOLS = ("max", "avg", "none")


def check_model(model: str, kwargs: Mapping[str, Any]) -> None:
    """Checks a model's name and the arguments the script sets (``checks.FlagError``, flag
    ``--MODEL_ARG``)."""
    from cnn_jax import models

    if model not in models.names():
        raise checks.FlagError("models", model, f"unknown model; expected one of "
                               f"{', '.join(DEFAULT_MODELS)} or another registered one")
    for key, value in kwargs.items():
        flag = f"{model}_{key}"
        if key in ("features", "dense_units"):
            checks.sizes(flag, value)
        elif key in ("units", "num_layers", "num_scales"):
            checks.integer(flag, value, 1)
        elif key == "kernel_size" and value is not None:
            if checks.integer(flag, value, 1) % 2 == 0:
                raise checks.FlagError(flag, value, "even; expected an odd integer >= 1 (the "
                                                    "filter window has a centre)")
        elif key == "pool":
            checks.choice(flag, value, POOLS)


def _check_magnitudes(kind: str, values: Sequence[float]) -> None:
    if kind not in SWEEP_FLAGS:
        raise checks.FlagError("sweeps", kind, f"unknown kind; expected one of {robustness.KINDS}")
    flag = SWEEP_FLAGS[kind]
    magnitudes = checks.wrap(flag, values,
                             lambda: equivariance_report.check_magnitudes(kind, values))
    checks.items(flag, magnitudes, float)  # no repeats


def _load(config: PracticeConfig):
    train = datasets.load(config.dataset, "train", data_dir=config.data_dir)
    checks.examples("n_train", config.n_train, len(train), low=1, what="train examples")
    perm = np.random.default_rng(config.seed).permutation(len(train))[: config.n_train]
    train = datasets.select(train, np.sort(perm), "[train subset]")
    test = datasets.load(config.dataset, "test", data_dir=config.data_dir)
    checks.examples("n_eval", config.n_eval, len(test), low=1, what="test examples")
    test = datasets.select(test, slice(0, config.n_eval), f"[:{config.n_eval}]")
    return train, test


def _sweep_model(config, workdir, test, num_classes, log) -> list[dict[str, Any]]:
    """Accuracy rows of one trained model (cached in ``workdir/robustness.json``)."""
    path = os.path.join(workdir, "robustness.json")
    if os.path.exists(path):
        return io.read_json(path)
    model, kwargs, params = restore_params(workdir)
    accuracy = subruns.accuracy_fn(model, kwargs, params, num_classes,
                                   batch_size=config.batch_size)
    rows = []
    for kind, mags in config.sweeps.items():
        t0 = time.perf_counter()
        accs = robustness.accuracy_sweep(accuracy, test.images, test.labels, kind, mags,
                                         seed=config.seed)
        rows += [{"model": model, "kind": kind, "magnitude": float(m), "accuracy": a}
                 for m, a in zip(mags, accs, strict=True)]
        log(f"{model}: {kind} sweep {time.perf_counter() - t0:.1f} s")
    io.write_json(path, rows)
    return rows


def _figure(rows, models: Sequence[str], kinds: Sequence[str], path: str, n_eval: int) -> None:
    from cnn_jax import plotting

    plt = plotting.plt
    styles = [("tab:blue", "o", "-"), ("tab:orange", "s", "--"), ("tab:green", "^", "-."),
              ("tab:red", "D", ":"), ("tab:purple", "v", "-"), ("tab:brown", "P", "--")]
    units = {"shift": "shift (pixels, random axis direction)",
             "rotate": "rotation (degrees, counter-clockwise)", "scale": "zoom factor (log axis)"}
    fig, axes = plt.subplots(1, len(kinds), figsize=(4.2 * len(kinds), 4), sharey=True,
                             squeeze=False)
    for ax, kind in zip(axes[0], kinds, strict=True):
        for i, model in enumerate(models):
            pts = [(r["magnitude"], 100 * r["accuracy"]) for r in rows
                   if r["model"] == model and r["kind"] == kind]
            colour, marker, line = styles[i % len(styles)]
            ax.plot(*zip(*pts), color=colour, marker=marker, ls=line, ms=4, label=model)
        ax.set_xlabel(units[kind])
        ax.grid(alpha=0.3)
        if kind == "shift":
            ax.xaxis.get_major_locator().set_params(integer=True)
        if kind == "rotate":
            ax.set_xticks(range(0, 361, 90))
        if kind == "scale":
            ax.set_xscale("log", base=2)
            ax.set_xticks([0.5, 0.71, 1, 1.41, 2], ["0.5", "0.71", "1", "1.41", "2"])
    axes[0][0].set_ylabel(f"test accuracy (%), {n_eval} images")
    axes[0][-1].legend(fontsize=8)
    fig.suptitle("Trained upright: accuracy under shifts, rotations and zooms "
                 "(each net keeps only the invariance it is built with)", fontsize=10)
    plotting.save_figure(fig, path)


def _equivariance(config, members: Mapping[str, str], log) -> tuple[list, list[str]]:
    """Runs the equivariance report on the trained models; rows and written files."""
    subjects = [equivariance_report.trained_subject(*restore_params(wd))
                for wd in members.values()]
    out = os.path.join(config.workdir, "equivariance")
    result = equivariance_report.run_report(
        out, subjects, batch=config.equivariance_batch, seed=config.seed,
        magnitudes=config.equivariance_magnitudes, log=log)
    return result["rows"], [os.path.relpath(f, config.workdir) for f in result["files"]]


def _equivariance_summary(rows) -> list[dict[str, Any]]:
    """Per trained model and stage: the relative error at the key magnitudes."""
    points = (("shift", 2.0), ("rotate", 45.0), ("rotate", 90.0), ("scale", 1.41))
    lookup = {(r[0], r[1], r[2], r[3]): r[4] for r in rows}
    out = []
    for subject in dict.fromkeys(r[0] for r in rows):
        for stage in dict.fromkeys(r[2] for r in rows if r[0] == subject):
            row = {"model": subject.removeprefix("trained "), "stage": stage}
            for kind, mag in points:
                row[f"{kind}_{mag:g}"] = lookup.get((subject, kind, stage, mag), "")
            out.append(row)
    return out


def run(config: PracticeConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Trains (or finds trained) every model, sweeps, measures, writes the outputs.

    Returns:
      The experiment record (as written to experiment.json).
    """
    start = time.perf_counter()
    train, test = _load(config)
    num_classes = train.info.num_classes
    data = lambda: DeviceData.from_arrays(train.images, train.labels, test.images, test.labels,
                                          num_classes)
    members, acc_rows, params = {}, [], []
    for model, kwargs in config.models.items():
        workdir = os.path.join(config.workdir, f"model_{model}")
        tc = TrainConfig(model=model, model_kwargs=dict(kwargs), dataset=config.dataset,
                         data_dir=config.data_dir, batch_size=config.batch_size,
                         epochs=config.epochs, learning_rate=config.learning_rate,
                         seed=config.seed, num_devices=1)
        r = subruns.train_and_test(tc, workdir, data, lambda: {}, num_classes, log)
        history = io.read_json(os.path.join(workdir, "results.json"))
        members[model] = workdir
        params.append({"model": model, "param_count": r["param_count"],
                       "valid_accuracy": r["valid_accuracy"], "epochs_run": r["epochs_run"],
                       "train_seconds": history["wall_time"]})
        acc_rows += _sweep_model(config, workdir, test, num_classes, log)
    models, kinds = list(config.models), list(config.sweeps)
    atomic_write_text(os.path.join(config.workdir, "accuracy.csv"),
                      subruns.rows_csv(acc_rows, ["model", "kind", "magnitude", "accuracy"]))
    atomic_write_text(os.path.join(config.workdir, "params.csv"),
                      subruns.rows_csv(params, list(params[0])))
    _figure(acc_rows, models, kinds, os.path.join(config.workdir, "figures", "accuracy.png"),
            len(test))
    eq_rows, eq_files = _equivariance(config, members, log)
    summary = _equivariance_summary(eq_rows)
    atomic_write_text(os.path.join(config.workdir, "equivariance_summary.csv"),
                      subruns.rows_csv(summary, list(summary[0])))
    record = _record(config, acc_rows, params, summary, eq_files, len(test))
    subruns.write_experiment(config.workdir, record)
    log(f"{NAME}: done in {time.perf_counter() - start:.0f} s")
    return record


def _record(config, acc_rows, params, summary, eq_files, n_eval) -> dict[str, Any]:
    acc = {(r["model"], r["kind"], r["magnitude"]): r["accuracy"] for r in acc_rows}
    numbers: dict[str, Any] = {"n_eval": n_eval}
    for p in params:
        numbers[f"param_count_{p['model']}"] = p["param_count"]
    for model in config.models:
        numbers[f"{model}_accuracy_upright"] = acc.get((model, "rotate", 0.0))
        for kind, mag in KEY_POINTS:
            if (model, kind, float(mag)) in acc:
                numbers[f"{model}_accuracy_{kind}_{mag:g}"] = acc[(model, kind, float(mag))]
        for row in summary:
            if row["model"] == model and row["stage"] == "logits":
                for key in ("shift_2", "rotate_90", "scale_1.41"):
                    numbers[f"{model}_logit_error_{key}"] = row.get(key)
    rot = {m: acc.get((m, "rotate", 90.0)) for m in config.models}
    finding = ("Trained upright, accuracy on test images turned 90 degrees: " + ", ".join(
        f"{m} {100 * a:.1f}%" for m, a in rot.items() if a is not None)
        + " (upright: " + ", ".join(f"{m} {100 * numbers[f'{m}_accuracy_upright']:.1f}%"
                                    for m in config.models) + ").")
    figures = [{"title": "Accuracy under shift, rotation and zoom, one curve per model",
                "png": "figures/accuracy.png"}]
    for f in eq_files:
        stem = os.path.splitext(os.path.basename(f))[0]
        if not f.endswith(".png"):
            continue
        title = (f"Equivariance error per stage of the {stem.removeprefix('stages_trained_')} "
                 "(trained)" if stem.startswith("stages_") else
                 f"Equivariance error of each trained model's last stages under {stem}")
        figures.append({"title": title, "png": f})
    return {
        "name": NAME,
        "title": "8. Equivariance in practice: accuracy under transforms of upright-trained models",
        "claim": ("A network is robust only to the transformations its layers are equivariant "
                  "to: convolutions to shifts, P4 convolutions to quarter turns, scale "
                  "convolutions (approximately) to zooms; an MLP to none."),
        "command": config.command,
        "quick": config.quick,
        "status": "complete",
        "finding": finding,
        "tables": [{"title": "Accuracy per model, transform and magnitude", "csv": "accuracy.csv"},
                   {"title": "Models: parameters, validation accuracy, training time",
                    "csv": "params.csv"},
                   {"title": "Feature-level equivariance error per stage (trained models)",
                    "csv": "equivariance_summary.csv"}],
        "figures": figures,
        "numbers": numbers,
        "protocol": {k: v for k, v in dataclasses.asdict(config).items()
                     if k not in ("workdir", "command")},
    }
