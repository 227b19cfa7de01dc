"""Collect the experiments' results into one report: ``python scripts/report.py --out=report``.

Reads the workdir each ``experiments/*.flags`` names, copies its small result files into
``OUT/<experiment>/`` and writes ``OUT/REPORT.md`` (``cnn_jax.experiments.report``).
"""

from __future__ import annotations

import glob
import os

from _cli import bad_flag, check_folder, check_output, run, usage_error
from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_string("out", "report", "Report folder (REPORT.md and one folder per experiment).")
flags.DEFINE_string("root", ".", "Repository root: experiments/*.flags and the workdirs.")
flags.DEFINE_boolean("quick", False, "Report the quick variants (experiments/*_quick.flags).")
flags.DEFINE_boolean("from_report", False, "Rebuild REPORT.md from OUT alone (no workdirs).")


def check_flags() -> None:
    """The whole configuration, checked (a bad value: one line, exit 2); nothing is read or
    written."""
    check_folder("root", FLAGS.root)
    pattern = "*_quick.flags" if FLAGS.quick else "*.flags"
    found = [p for p in glob.glob(os.path.join(FLAGS.root, "experiments", pattern))
             if p.endswith("_quick.flags") == FLAGS.quick]
    if not found:
        bad_flag("root", FLAGS.root, f"has no experiments/{pattern}"
                 f"{' (--quick)' if FLAGS.quick else ''}; expected the repository root")
    if FLAGS.from_report:
        check_folder("out", FLAGS.out)  # rebuilt from what it holds
    else:
        check_output("out", FLAGS.out, folder=True)


def main(argv):
    if len(argv) > 1:
        usage_error(f"unexpected arguments {argv[1:]}")
    check_flags()
    from cnn_jax.experiments import report

    status = report.build(FLAGS.out, FLAGS.root, quick=FLAGS.quick,
                          from_report=FLAGS.from_report)
    for name, state in status.items():
        print(f"{name:32s} {state}")
    print(f"wrote {FLAGS.out}/REPORT.md")


if __name__ == "__main__":
    run(main)
