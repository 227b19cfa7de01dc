"""Collect the experiments' results into one report: ``python scripts/report.py --out=report``.

Reads the workdir each ``experiments/*.flags`` names, copies its small result files into
``OUT/<experiment>/`` and writes ``OUT/REPORT.md`` (``cnn_jax.experiments.report``).
"""

from __future__ import annotations

from _cli import run, usage_error
from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_string("out", "report", "Report folder (REPORT.md and one folder per experiment).")
flags.DEFINE_string("root", ".", "Repository root: experiments/*.flags and the workdirs.")
flags.DEFINE_boolean("quick", False, "Report the quick variants (experiments/*_quick.flags).")
flags.DEFINE_boolean("from_report", False, "Rebuild REPORT.md from OUT alone (no workdirs).")


def main(argv):
    if len(argv) > 1:
        usage_error(f"unexpected arguments {argv[1:]}")
    if not FLAGS.out:
        usage_error(f"--out={FLAGS.out!r}: must name a folder")
    from cnn_jax.experiments import report

    status = report.build(FLAGS.out, FLAGS.root, quick=FLAGS.quick,
                          from_report=FLAGS.from_report)
    for name, state in status.items():
        print(f"{name:32s} {state}")
    print(f"wrote {FLAGS.out}/REPORT.md")


if __name__ == "__main__":
    run(main)
