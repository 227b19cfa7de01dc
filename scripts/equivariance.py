"""Equivariance report: ``scripts/equivariance.py --flagfile=experiments/equivariance.flags``.

Flags -> ``cnn_jax.equivariance_report.run_report``: every layer and model (random init, and
a trained model when --checkpoint names a training workdir) under shifts, rotations and
zooms; writes equivariance.csv, equivariance.md and figures/ into --workdir and prints the
table.
"""

from __future__ import annotations

import sys

from _cli import run, usage_error
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



def magnitudes_from_flags(defaults):
    chosen = {"shift": FLAGS.shifts, "rotate": FLAGS.angles, "scale": FLAGS.zooms}
    out = {}
    for kind, values in chosen.items():
        try:
            out[kind] = tuple(float(v) for v in values) if values else defaults[kind]
        except ValueError:
            usage_error(f"--{ {'shift': 'shifts', 'rotate': 'angles', 'scale': 'zooms'}[kind]} "
                        f"must be a comma-separated list of numbers, got {values}")
    return out


def main(argv):
    if len(argv) > 1:
        usage_error(f"unexpected arguments {argv[1:]}")
    if FLAGS.workdir is None:
        usage_error("--workdir is required (set it in the flagfile)")
    from cnn_jax import equivariance_report as report

    subjects = report.default_subjects(FLAGS.conv_impl) if FLAGS.zoo else []
    if FLAGS.only:
        unknown = set(FLAGS.only) - {s.name for s in subjects}
        if unknown:
            usage_error(f"--only names unknown subjects {sorted(unknown)}; known: "
                        f"{[s.name for s in subjects]}")
        subjects = [s for s in subjects if s.name in FLAGS.only]
    if FLAGS.checkpoint:
        from cnn_jax.training import restore

        try:  # any registered model, also one from the run's --model_module
            run = restore(FLAGS.checkpoint)
        except (OSError, ValueError) as e:
            usage_error(f"--checkpoint={FLAGS.checkpoint}: {e}")
        subjects.append(report.trained_subject(
            run.config.model, {**run.config.model_kwargs, "num_classes": run.num_classes},
            run.variables))
    if not subjects:
        usage_error("nothing to measure: --nozoo without --checkpoint")
    try:
        result = report.run_report(
            FLAGS.workdir, subjects, image_size=FLAGS.image_size, channels=FLAGS.channels,
            batch=FLAGS.batch, sigma=FLAGS.sigma, seed=FLAGS.seed,
            magnitudes=magnitudes_from_flags(report.DEFAULT_MAGNITUDES), figures=FLAGS.figures,
            log=lambda m: print(m, file=sys.stderr))
    except ValueError as e:
        usage_error(str(e))
    print(result["table"])
    print(f"wrote {len(result['files'])} files to {FLAGS.workdir} in {result['seconds']:.1f} s")


if __name__ == "__main__":
    run(main)
