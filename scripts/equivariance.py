"""Equivariance report: ``scripts/equivariance.py --flagfile=experiments/equivariance.flags``.

Flags -> ``cnn_jax.equivariance_report.run_report``: every layer and model (random init, and
a trained model when --checkpoint names a training workdir) under shifts, rotations and
zooms; writes equivariance.csv, equivariance.md and figures/ into --workdir and prints the
table.
"""

from __future__ import annotations

import sys

import _cli
from _cli import bad_flag, check_choice, check_float, check_int, check_output, run
from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Output folder for the table, CSV and figures.")
flags.DEFINE_string("checkpoint", None, "Workdir of a finished training run to measure too.")
flags.DEFINE_boolean("zoo", True, "Measure the default layer and model zoo (random init).")
flags.DEFINE_multi_string("only", [], "Measure only zoo subjects with these names.")
flags.DEFINE_integer("image_size", 28, "Input height and width.")
flags.DEFINE_integer("channels", 1, "Input channels.")
flags.DEFINE_integer("batch", 2, "Number of input images.")
flags.DEFINE_float("sigma", 2.0, "Smoothness of the random inputs (Gaussian std, pixels).")
flags.DEFINE_integer("seed", 0, "Seed of inputs and random parameters.")
flags.DEFINE_list("shifts", None, "Shift magnitudes in pixels (default: the library's).")
flags.DEFINE_list("angles", None, "Rotation angles in degrees.")
flags.DEFINE_list("zooms", None, "Zoom factors.")
flags.DEFINE_string("conv_impl", "auto", "ops.conv2d implementation: auto, xla or matmul.")
flags.DEFINE_boolean("figures", True, "Draw the figures.")

MAGNITUDE_FLAGS = {"shift": "shifts", "rotate": "angles", "scale": "zooms"}
MAX_IMAGE_SIZE, MAX_CHANNELS, MAX_BATCH = 1024, 64, 1024


def settings_from_flags() -> dict:
    """Checks every flag (one line and exit 2 on a bad one); returns run_report's arguments.

    Reads the --checkpoint run (its config.json and final parameters) and traces every
    subject on an abstract input, but compiles nothing and writes nothing.
    """
    from cnn_jax import equivariance_report as report
    from cnn_jax.ops.conv import IMPLS

    check_output("workdir", FLAGS.workdir, folder=True)
    impl = check_choice("conv_impl", FLAGS.conv_impl, IMPLS)
    size = check_int("image_size", FLAGS.image_size, 1, MAX_IMAGE_SIZE)
    channels = check_int("channels", FLAGS.channels, 1, MAX_CHANNELS)
    batch = check_int("batch", FLAGS.batch, 1, MAX_BATCH)
    sigma = check_float("sigma", FLAGS.sigma, 0.0)
    seed = check_int("seed", FLAGS.seed, 0, 2**32 - 1)
    magnitudes = {}
    for kind, name in MAGNITUDE_FLAGS.items():
        values = getattr(FLAGS, name)
        check = lambda k=kind, v=values: report.check_magnitudes(k, v)  # noqa: E731
        magnitudes[kind] = (report.DEFAULT_MAGNITUDES[kind] if values is None
                            else _cli.library_check(name, values, check))
    if FLAGS.only and not FLAGS.zoo:
        bad_flag("only", FLAGS.only, "names zoo subjects, but --nozoo turns the zoo off")
    subjects = []
    if FLAGS.zoo:
        subjects = _cli.library_check("only", FLAGS.only,
                                      lambda: report.select_subjects(FLAGS.only, impl))
    if FLAGS.checkpoint is not None:
        subjects.append(_cli.library_check("checkpoint", FLAGS.checkpoint,
                                           lambda: trained_subject(FLAGS.checkpoint)))
    if not subjects:
        bad_flag("zoo", False, "nothing to measure; keep the zoo or name a --checkpoint")
    shape = (batch, size, size, channels)
    for subject in subjects:
        flag, value = (("checkpoint", FLAGS.checkpoint) if subject.params is not None
                       else ("image_size", size))
        _cli.library_check(flag, value, lambda s=subject: report.check_traceable(s, shape, seed))
    return dict(subjects=subjects, image_size=size, channels=channels, batch=batch,
                sigma=sigma, seed=seed, magnitudes=magnitudes, figures=FLAGS.figures)


def trained_subject(workdir: str):
    """The subject for a finished training run (errors name the file that is wrong)."""
    from cnn_jax import equivariance_report as report
    from cnn_jax.training import restore

    if not workdir.strip():
        raise ValueError("empty; expected the workdir of a finished training run")
    run = restore(workdir)  # any registered model, also one from the run's --model_module
    return report.trained_subject(
        run.config.model, {**run.config.model_kwargs, "num_classes": run.num_classes},
        run.variables)


def main(argv):
    if len(argv) > 1:
        _cli.usage_error(f"unexpected arguments {argv[1:]}; every setting is a --flag")
    settings = settings_from_flags()
    from cnn_jax import equivariance_report as report

    result = report.run_report(FLAGS.workdir, log=lambda m: print(m, file=sys.stderr),
                               **settings)
    print(result["table"])
    print(f"wrote {len(result['files'])} files to {FLAGS.workdir} in {result['seconds']:.1f} s")


if __name__ == "__main__":
    run(main)
