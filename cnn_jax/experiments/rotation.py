"""Experiment 7: rotation generalisation, a plain CNN against a P4 CNN of the same size.

The protocol of Cohen & Welling (2016) on rotated MNIST, built from another dataset
(Fashion-MNIST by default): 10,000 training, 2,000 validation and 50,000 test images, each
rotated by its own uniform random angle in [0, 360). The test split has only 10,000
images, so the test set is the test split plus training images outside the 12,000
(disjoint from them). Both models are trained on the rotated training set, and again on
the same images upright; every run is scored on the rotated test set (and, for reference,
on the test split's images upright). Published anchor (MNIST): Z2CNN 5.03%, P4CNN 2.28% test error.

``run(config)`` writes into ``config.workdir``: one sub-run per (model, training set, seed),
``runs.csv`` (one row per sub-run), ``errors.csv`` (mean, sd and n over seeds),
``figures/errors.png`` and ``experiment.json``.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from cnn_jax import data as datasets
from cnn_jax.config import EarlyStoppingConfig, TrainConfig
from cnn_jax.data.dataset import Dataset
from cnn_jax.experiments import checks, subruns
from cnn_jax.io import atomic_write_text
from cnn_jax.training import DeviceData

__all__ = ["CNN_KWARGS", "P4CNN_KWARGS", "RotationConfig", "rotation_splits", "run"]

NAME = "rotation"
CONDITIONS = ("rotated", "upright")
# Same parameter count within 5% (tests/experiments/test_rotation.py): a p4 stage with F
# filters holds F * F_in * 4 * 9 weights, a plain stage with 2F filters 2F * 2F_in * 9.
CNN_KWARGS = {"features": (16, 32, 64), "padding": "same", "head": "gap"}
P4CNN_KWARGS = {"features": (8, 16, 32)}
PUBLISHED = {"cnn": 5.03, "p4cnn": 2.28}  # rotated MNIST test error (%), Cohen & Welling 2016


@dataclasses.dataclass(frozen=True)
class RotationConfig:
    """The experiment's settings (the defaults are the full protocol).

    Attributes:
      workdir: output folder.
      dataset, data_dir: the source of images (``cnn_jax.data.load``).
      n_train, n_valid, n_test: set sizes (Cohen & Welling: 10,000, 2,000, 50,000).
      data_seed: chooses the subsets and the angles (the same for every model and seed).
      seeds: model seeds (initialisation and shuffling).
      conditions: training sets, "rotated" and/or "upright".
      models: {registry name: hyper-parameters}.
      epochs, batch_size, learning_rate: Adam training; ``patience`` > 0 adds early stopping
        on the validation loss with the best weights restored (0: train all epochs).
      train: False only collects the finished sub-runs (partial results while other
        processes train the rest) and trains nothing.
      quick: a smoke-test run (recorded in experiment.json).
      command: the command that reproduces the run (recorded).
    """

    workdir: str
    dataset: str = "fashion_mnist"
    data_dir: str | None = None
    n_train: int = 10_000
    n_valid: int = 2_000
    n_test: int = 50_000
    data_seed: int = 0
    seeds: tuple[int, ...] = (0, 1, 2)
    conditions: tuple[str, ...] = CONDITIONS
    models: Mapping[str, Mapping[str, Any]] = dataclasses.field(
        default_factory=lambda: {"cnn": CNN_KWARGS, "p4cnn": P4CNN_KWARGS})
    epochs: int = 30
    batch_size: int = 128
    learning_rate: float = 3e-3
    patience: int = 5
    train: bool = True
    quick: bool = False
    command: str = ""

    def __post_init__(self):
        """Checks every field (``checks.FlagError`` names the script's flag), the set sizes
        against the dataset's splits when their sizes are known without loading them."""
        checks.dataset("dataset", self.dataset)
        if self.data_dir is not None:
            checks.folder("data_dir", self.data_dir)
        checks.positive(self, "n_train", "n_valid", "n_test", "epochs", "batch_size")
        train = checks.split_size(self.dataset, "train", self.data_dir)
        test = checks.split_size(self.dataset, "test", self.data_dir)
        if train is not None and test is not None:
            check_sizes(self, train, test)
        checks.seed("data_seed", self.data_seed)
        checks.items("seeds", self.seeds, lambda v: checks.as_int(v, 0, checks.MAX_SEED))
        checks.items("conditions", self.conditions,
                     lambda v: checks.choice("conditions", v, CONDITIONS))
        if not self.models:
            raise checks.FlagError("models", "", "empty; expected at least one model")
        for model, kwargs in self.models.items():
            checks.sizes(f"{model}_features", kwargs.get("features", (1,)))
        checks.number("learning_rate", self.learning_rate, 0, low_open=True)
        checks.integer("patience", self.patience, 0)


def check_sizes(config: RotationConfig, train: int, test: int) -> None:
    """``n_train + n_valid`` images of a train split of ``train`` images, and ``n_test`` test
    images from the ``test`` of the test split and the train images left over.

    Raises:
      checks.FlagError: naming the first count that does not fit.
    """
    checks.examples("n_train", config.n_train, train - 1, low=1,
                    what="train images (one must be left for --n_valid)")
    checks.examples("n_valid", config.n_valid, train - config.n_train, low=1,
                    what="train images left after --n_train")
    checks.examples("n_test", config.n_test, test + train - config.n_train - config.n_valid,
                    low=1, what="test images (the test split plus the train images left after "
                                "--n_train and --n_valid)")


def _concat(a: Dataset, b: Dataset) -> Dataset:
    return dataclasses.replace(a, images=np.concatenate([a.images, b.images]),
                               labels=np.concatenate([a.labels, b.labels]),
                               source=f"{a.source} + {b.source}", params=None)


def rotation_splits(config: RotationConfig) -> dict[str, Dataset]:
    """The experiment's sets, the same on every call.

    A permutation of the train split (seeded by ``data_seed``) gives the training images
    (first ``n_train``), the validation images (next ``n_valid``) and, when the test split is
    smaller than ``n_test``, the rest of the test set (next ones).

    Returns:
      {"train_upright", "valid_upright", "train_rotated", "valid_rotated"}: the training
      and validation images, upright and rotated; "test_rotated": ``n_test`` rotated test
      images; "test_rotated_source": the same upright (the test split, then training
      images outside the training and validation subsets); "test_upright": the test
      split's images among them, upright (a reference).
      uint8 [N, H, W, C]; rotated sets record ``params["angle"]`` (degrees, in [0, 360)).

    Raises:
      checks.FlagError: the sizes ask for more images than the dataset has.
    """
    train = datasets.load(config.dataset, "train", data_dir=config.data_dir)
    test = datasets.load(config.dataset, "test", data_dir=config.data_dir)
    check_sizes(config, len(train), len(test))
    fit_n = config.n_train + config.n_valid
    extra = max(0, config.n_test - len(test))
    perm = np.random.default_rng(config.data_seed).permutation(len(train))
    sets = {
        "train_upright": datasets.select(train, perm[: config.n_train], "[train subset]"),
        "valid_upright": datasets.select(train, perm[config.n_train: fit_n], "[valid subset]"),
        "test_upright": datasets.select(test, slice(0, min(config.n_test, len(test)))),
    }
    test_all = sets["test_upright"]
    if extra:
        test_all = _concat(test_all, datasets.select(
            train, perm[fit_n: fit_n + extra], "[unused train images]"))
    sets["test_rotated_source"] = test_all
    upright = {"train": sets["train_upright"], "valid": sets["valid_upright"], "test": test_all}
    for i, (part, ds) in enumerate(upright.items()):
        sets[f"{part}_rotated"] = datasets.rotated(ds, angles=(0.0, 360.0),
                                                   seed=1000 * config.data_seed + i)
    return sets


def member_name(model: str, condition: str, seed: int) -> str:
    """The sub-run folder, ``model_M-train_C-seed_S``."""
    return f"model_{model}-train_{condition}-seed_{seed}"


def train_config(config: RotationConfig, model: str, seed: int) -> TrainConfig:
    """The TrainConfig of one sub-run (the data are passed to ``fit`` directly)."""
    stopping = None
    if config.patience:
        stopping = EarlyStoppingConfig(monitor="val_loss", patience=config.patience,
                                       restore_best_weights=True)
    return TrainConfig(model=model, model_kwargs=dict(config.models[model]),
                       dataset=config.dataset, data_dir=config.data_dir,
                       batch_size=config.batch_size, epochs=config.epochs,
                       learning_rate=config.learning_rate, early_stopping=stopping, seed=seed,
                       num_devices=1)


def summarize(rows: Sequence[Mapping[str, Any]], models: Sequence[str],
              conditions: Sequence[str]) -> list[dict[str, Any]]:
    """Mean, sd and n over seeds of the test errors (%) per (model, training set)."""
    out = []
    for condition in conditions:
        for model in models:
            cell = [r for r in rows if r["model"] == model and r["train"] == condition]
            if not cell:
                continue
            row = {"model": model, "train": condition, "param_count": cell[0]["param_count"]}
            for metric in ("rotated_test_error", "upright_test_error", "epochs_run"):
                m, sd, n = subruns.mean_sd([r[metric] for r in cell])
                row.update({f"{metric}_mean": m, f"{metric}_sd": sd})
            row["n"] = n
            out.append(row)
    return out


def _figure(summary, path: str) -> None:
    from cnn_jax import plotting

    plt = plotting.plt
    conditions = [c for c in CONDITIONS if any(r["train"] == c for r in summary)]
    fig, axes = plt.subplots(1, len(conditions), figsize=(4 * len(conditions) + 1, 4),
                             sharey=True, squeeze=False)
    styles = {"cnn": ("tab:blue", "//"), "p4cnn": ("tab:orange", "")}
    top = max(r["rotated_test_error_mean"] + np.nan_to_num(r["rotated_test_error_sd"])
              for r in summary)
    for ax, condition in zip(axes[0], conditions, strict=True):
        cells = [r for r in summary if r["train"] == condition]
        for i, r in enumerate(cells):
            colour, hatch = styles.get(r["model"], ("tab:gray", ".."))
            mean, sd = r["rotated_test_error_mean"], r["rotated_test_error_sd"]
            ax.bar(i, mean, yerr=np.nan_to_num(sd), capsize=4, color=colour, hatch=hatch,
                   edgecolor="black")
            ax.annotate(f"{mean:.2f}%", (i, mean), textcoords="offset points",
                        xytext=(12, 4), fontsize=8)
        ax.set_xticks(range(len(cells)), [f"{r['model']}\n{r['param_count']:,} params\n"
                                          f"n={r['n']}" for r in cells])
        ax.set_title(f"trained on {condition} images", fontsize=10)
        ax.set_ylim(0, 1.15 * top)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("test error on rotated images (%)")
    fig.suptitle("Rotated-test error of a P4 CNN and a plain CNN of the same size "
                 "(bars: mean, whiskers: sd over n seeds)", fontsize=10)
    plotting.save_figure(fig, path)


def _finding(summary) -> str:
    cell = {(r["model"], r["train"]): r for r in summary}
    parts = []
    for condition in CONDITIONS:
        cnn, p4 = cell.get(("cnn", condition)), cell.get(("p4cnn", condition))
        if cnn and p4:
            a, b = cnn["rotated_test_error_mean"], p4["rotated_test_error_mean"]
            parts.append(f"trained {condition}, rotated-test error P4 CNN {b:.2f}% vs CNN "
                         f"{a:.2f}% ({100 * (b - a) / a:+.0f}%, n={min(cnn['n'], p4['n'])} "
                         "seeds)")
    if not parts:
        return "no pair of finished runs yet"
    text = "; ".join(parts)
    return (text[0].upper() + text[1:] + " (published on rotated MNIST: P4CNN 2.28% vs "
            "Z2CNN 5.03%, -55%).")


def run(config: RotationConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Runs (or resumes) every sub-run and writes the tables, figure and experiment.json.

    Sub-runs go in order training set, seed, model: the rotated-training result (the
    protocol's) gets all its seeds first, and an interrupted run leaves complete pairs.
    The summary files are rewritten after every sub-run.

    Returns:
      The experiment record (as written to experiment.json).
    """
    start = time.perf_counter()
    sets: dict[str, Dataset] = {}

    def get_sets():
        if not sets:
            t0 = time.perf_counter()
            sets.update(rotation_splits(config))
            log(f"data: {', '.join(f'{k} {len(v)}' for k, v in sets.items())} "
                f"({time.perf_counter() - t0:.1f} s)")
        return sets

    shape = datasets.load(config.dataset, "test[:1]", data_dir=config.data_dir)
    num_classes, image_shape = shape.info.num_classes, shape.info.image_shape
    counts = {m: subruns.param_count(m, kw, image_shape, num_classes)
              for m, kw in config.models.items()}
    members = [os.path.join(config.workdir, member_name(m, c, s))
               for c in config.conditions for s in config.seeds for m in config.models]
    if config.train and not all(os.path.exists(os.path.join(m, "test.json")) for m in members):
        get_sets()  # before the first sub-run: a size the data contradict stops nothing midway
    rows = []
    total = len(config.seeds) * len(config.conditions) * len(config.models)
    for condition in config.conditions:
        for seed in config.seeds:
            def train_data(condition=condition):
                s = get_sets()
                tr, va = s[f"train_{condition}"], s[f"valid_{condition}"]
                return DeviceData.from_arrays(tr.images, tr.labels, va.images, va.labels,
                                              num_classes)

            def test_data():
                s = get_sets()
                return {k: (s[k].images, s[k].labels) for k in ("test_rotated", "test_upright")}

            for model in config.models:
                workdir = os.path.join(config.workdir, member_name(model, condition, seed))
                if not config.train and not os.path.exists(os.path.join(workdir, "test.json")):
                    continue
                r = subruns.train_and_test(train_config(config, model, seed), workdir,
                                           train_data, test_data, num_classes, log)
                rows.append({
                    "model": model, "train": condition, "seed": seed,
                    "param_count": r["param_count"], "epochs_run": r["epochs_run"],
                    "best_epoch": r["best_epoch"], "valid_accuracy": r["valid_accuracy"],
                    "rotated_test_error": 100 * (1 - r["test_rotated_accuracy"]),
                    "upright_test_error": 100 * (1 - r["test_upright_accuracy"]),
                    "wall_time": r["wall_time"]})
                record = write_outputs(config, rows, counts, total)
    if not rows:
        raise ValueError(f"no finished sub-runs in {config.workdir!r} (train=False)")
    log(f"{NAME}: {len(rows)}/{total} sub-runs in {time.perf_counter() - start:.0f} s")
    return record


def write_outputs(config: RotationConfig, rows, counts: Mapping[str, int], total: int):
    """runs.csv, errors.csv, figures/errors.png and experiment.json from the finished rows."""
    summary = summarize(rows, list(config.models), config.conditions)
    atomic_write_text(os.path.join(config.workdir, "runs.csv"),
                      subruns.rows_csv(rows, list(rows[0])))
    atomic_write_text(os.path.join(config.workdir, "errors.csv"),
                      subruns.rows_csv(summary, list(summary[0])))
    _figure(summary, os.path.join(config.workdir, "figures", "errors.png"))
    numbers: dict[str, Any] = {f"param_count_{m}": c for m, c in counts.items()}
    if "cnn" in counts and "p4cnn" in counts:
        numbers["param_ratio_p4cnn_to_cnn"] = counts["p4cnn"] / counts["cnn"]
    for r in summary:
        key = f"{r['model']}_train_{r['train']}"
        numbers.update({f"{key}_rotated_test_error_mean": r["rotated_test_error_mean"],
                        f"{key}_rotated_test_error_sd": r["rotated_test_error_sd"],
                        f"{key}_upright_test_error_mean": r["upright_test_error_mean"],
                        f"{key}_n": r["n"]})
    numbers.update({"finished_subruns": len(rows), "planned_subruns": total,
                    "published_mnist_z2cnn_error": PUBLISHED["cnn"],
                    "published_mnist_p4cnn_error": PUBLISHED["p4cnn"]})
    record = {
        "name": NAME,
        "title": "7. Rotation generalisation: P4 CNN vs CNN on rotated images",
        "claim": ("A network whose layers are equivariant to rotations generalises better to "
                  "rotated images than a plain CNN with the same number of parameters."),
        "command": config.command,
        "quick": config.quick,
        "status": "complete" if len(rows) == total else "partial",
        "finding": _finding(summary),
        "tables": [{"title": "Test error (%) over seeds per model and training set",
                    "csv": "errors.csv"},
                   {"title": "Every sub-run", "csv": "runs.csv"}],
        "figures": [{"title": "Rotated-test error of a P4 CNN and a CNN of the same size",
                     "png": "figures/errors.png"}],
        "numbers": numbers,
        "protocol": {k: v for k, v in dataclasses.asdict(config).items()
                     if k not in ("workdir", "command", "train")},
    }
    subruns.write_experiment(config.workdir, record)
    return record
