"""Experiment 8, equivariance in practice:
``scripts/equivariance_practice.py --flagfile=experiments/equivariance_practice.flags``.

Flags -> ``cnn_jax.experiments.equivariance_practice.run``: MLP, CNN, P4 CNN and
scale-equivariant CNN trained upright, scored under shifts, rotations and zooms, and their
per-stage equivariance error; resumable.
"""

from __future__ import annotations

import shlex
import sys

from _cli import (
    check_list,
    check_output,
    config_check,
    errors_after_load,
    run,
    show_progress,
    usage_error,
)
from absl import flags

from cnn_jax.experiments import checks

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Output folder (sub-runs, tables, figures).")
flags.DEFINE_string("dataset", "fashion_mnist", "Dataset (cnn_jax.data.load name).")
flags.DEFINE_string("data_dir", None, "Local folder with the dataset.")
flags.DEFINE_integer("n_train", 10_000, "Training images (seeded subset of train).")
flags.DEFINE_integer("n_eval", 1_000, "Test images scored under every transform.")
flags.DEFINE_list("models", ["mlp", "cnn", "p4cnn", "sesn"], "Models to compare.")
flags.DEFINE_integer("mlp_units", 512, "MLP hidden units (one hidden layer).")
flags.DEFINE_list("cnn_features", ["32", "64"], "CNN filters per stage (dense head).")
flags.DEFINE_integer("cnn_dense_units", 128, "CNN dense layer width.")
flags.DEFINE_list("p4cnn_features", ["8", "16", "32"], "P4 CNN filters per stage.")
flags.DEFINE_list("sesn_features", ["8", "16", "32"], "Scale CNN filters per stage.")
flags.DEFINE_integer("sesn_kernel_size", 7, "Scale CNN filter window (odd).")
flags.DEFINE_integer("sesn_num_scales", 3, "Scale CNN scales.")
flags.DEFINE_string("sesn_pool", "max", "Scale CNN spatial pooling: max, avg or none.")
flags.DEFINE_list("shifts", [str(s) for s in range(7)], "Shifts in whole pixels.")
flags.DEFINE_list("angles", [str(a) for a in range(0, 361, 30)], "Rotations in degrees.")
flags.DEFINE_list("zooms", ["0.5", "0.6", "0.71", "0.84", "1", "1.19", "1.41", "1.68", "2"],
                  "Zoom factors.")
flags.DEFINE_integer("epochs", 3, "Training epochs.")
flags.DEFINE_integer("batch_size", 128, "Batch size.")
flags.DEFINE_float("learning_rate", 3e-3, "Adam learning rate.")
flags.DEFINE_integer("seed", 0, "Seed of the subset, initialisation, shuffling, directions.")
flags.DEFINE_integer("equivariance_batch", 2, "Smooth random images per equivariance check.")
flags.DEFINE_boolean("equivariance_like_sweeps", False,
                     "Measure feature equivariance at the sweeps' magnitudes (default: the "
                     "equivariance report's).")
flags.DEFINE_boolean("quick", False, "Mark the run as a smoke test.")


def _items(name: str, kind=checks.as_int) -> tuple:
    """List flag ``name``, each item converted (syntax only; the config checks the values)."""
    return tuple(check_list(name, FLAGS[name].value, kind, allow_empty=True))


def model_kwargs() -> tuple[dict[str, dict], dict[str, dict]]:
    """``(every model's arguments, those of the models --models names)``."""
    dense = config_check(lambda: checks.integer("cnn_dense_units", FLAGS.cnn_dense_units, 1))
    known = {
        "mlp": {"num_layers": 1, "units": FLAGS.mlp_units},
        "cnn": {"features": _items("cnn_features"), "dense_units": (dense,)},
        "p4cnn": {"features": _items("p4cnn_features")},
        "sesn": {"features": _items("sesn_features"), "kernel_size": FLAGS.sesn_kernel_size,
                 "num_scales": FLAGS.sesn_num_scales, "pool": FLAGS.sesn_pool},
    }
    names = config_check(lambda: checks.items("models", FLAGS.models,
                                              lambda m: checks.choice("models", m, tuple(known))))
    return known, {m: known[m] for m in names}


def config_from_flags():
    """The whole configuration, checked (a bad value: one line, exit 2); nothing is loaded.

    Every flag is checked, the model arguments of models left out of ``--models`` too."""
    from cnn_jax.experiments import equivariance_practice as practice

    check_output("workdir", FLAGS.workdir, folder=True)
    known, models = model_kwargs()
    for name, kwargs in known.items():  # the models left out of --models too
        config_check(lambda n=name, k=kwargs: practice.check_model(n, k))
    sweeps = {"shift": _items("shifts", checks.as_float),
              "rotate": _items("angles", checks.as_float),
              "scale": _items("zooms", checks.as_float)}
    return config_check(lambda: practice.PracticeConfig(
        workdir=FLAGS.workdir, dataset=FLAGS.dataset, data_dir=FLAGS.data_dir,
        n_train=FLAGS.n_train, n_eval=FLAGS.n_eval, models=models, sweeps=sweeps,
        epochs=FLAGS.epochs, batch_size=FLAGS.batch_size, learning_rate=FLAGS.learning_rate,
        seed=FLAGS.seed, equivariance_batch=FLAGS.equivariance_batch,
        equivariance_magnitudes=sweeps if FLAGS.equivariance_like_sweeps else None,
        quick=FLAGS.quick,
        command=shlex.join(["python", "scripts/equivariance_practice.py", *sys.argv[1:]])))


def main(argv):
    show_progress()
    if len(argv) > 1:
        usage_error(f"unexpected arguments {argv[1:]}")
    config = config_from_flags()
    from cnn_jax.experiments import equivariance_practice as practice

    with errors_after_load(config.workdir):
        record = practice.run(config, log=lambda m: print(m, file=sys.stderr, flush=True))
    print(record["finding"])


if __name__ == "__main__":
    run(main)
