"""Experiment 7, rotation generalisation:
``scripts/rotation.py --flagfile=experiments/rotation.flags``.

Flags -> ``cnn_jax.experiments.rotation.run``: a plain CNN and a P4 CNN of the same size,
trained on rotated and on upright images, tested on rotated images; resumable.
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
flags.DEFINE_string("dataset", "fashion_mnist", "Source dataset (cnn_jax.data.load name).")
flags.DEFINE_string("data_dir", None, "Local folder with the dataset.")
flags.DEFINE_integer("n_train", 10_000, "Rotated training images.")
flags.DEFINE_integer("n_valid", 2_000, "Rotated validation images.")
flags.DEFINE_integer("n_test", 50_000, "Rotated test images (test split + unused train images).")
flags.DEFINE_integer("data_seed", 0, "Seed of the subsets and angles.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Model seeds.")
flags.DEFINE_list("conditions", ["rotated", "upright"], "Training sets.")
flags.DEFINE_list("cnn_features", ["16", "32", "64"], "Filters per stage of the plain CNN.")
flags.DEFINE_list("p4cnn_features", ["8", "16", "32"], "Filters per stage of the P4 CNN.")
flags.DEFINE_integer("epochs", 30, "Maximum epochs.")
flags.DEFINE_integer("batch_size", 128, "Batch size.")
flags.DEFINE_float("learning_rate", 3e-3, "Adam learning rate.")
flags.DEFINE_integer("patience", 5, "Early-stopping patience on val_loss (0: none).")
flags.DEFINE_boolean("train", True, "--notrain: only collect the finished sub-runs.")
flags.DEFINE_boolean("quick", False, "Mark the run as a smoke test.")


def config_from_flags():
    """The whole configuration, checked (a bad value: one line, exit 2); nothing is loaded."""
    from cnn_jax.experiments import rotation

    check_output("workdir", FLAGS.workdir, folder=True)
    ints = lambda name: tuple(  # noqa: E731  (syntax only; the config checks ranges)
        check_list(name, FLAGS[name].value, checks.as_int, allow_empty=True))
    models = {"cnn": {**rotation.CNN_KWARGS, "features": ints("cnn_features")},
              "p4cnn": {**rotation.P4CNN_KWARGS, "features": ints("p4cnn_features")}}
    return config_check(lambda: rotation.RotationConfig(
        workdir=FLAGS.workdir, dataset=FLAGS.dataset, data_dir=FLAGS.data_dir,
        n_train=FLAGS.n_train, n_valid=FLAGS.n_valid, n_test=FLAGS.n_test,
        data_seed=FLAGS.data_seed, seeds=ints("seeds"), conditions=tuple(FLAGS.conditions),
        models=models, epochs=FLAGS.epochs, batch_size=FLAGS.batch_size,
        learning_rate=FLAGS.learning_rate, patience=FLAGS.patience, train=FLAGS.train,
        quick=FLAGS.quick,
        command=shlex.join(["python", "scripts/rotation.py",  # what trains, not --notrain
                            *(a for a in sys.argv[1:] if a != "--notrain")])))


def main(argv):
    show_progress()
    if len(argv) > 1:
        usage_error(f"unexpected arguments {argv[1:]}")
    config = config_from_flags()
    from cnn_jax.experiments import rotation

    with errors_after_load(config.workdir):
        record = rotation.run(config, log=lambda m: print(m, file=sys.stderr, flush=True))
    print(f"{record['status']}: {record['finding']}")


if __name__ == "__main__":
    run(main)
