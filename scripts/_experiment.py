"""What the experiment scripts share: flags made from an experiment's ``Settings`` dataclass.

An experiment module in ``cnn_jax.experiments`` defines ``NAME``, a frozen ``Settings``
dataclass (ints, floats, bools, strings and tuples of ints/floats/strings) whose
``__post_init__`` checks every field (``cnn_jax.experiments.checks``), and
``run(workdir, settings, *, command_line)``. A script calls ``define(module)`` (``--workdir``
plus one flag per field) and ``main(module, check)``: the whole configuration is checked
first, and a bad value is one line ``SCRIPT: error: --FLAG=VALUE: ...``, exit 2, before
anything is loaded, compiled or written. ``parse`` does the same for a library caller.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import sys
import typing
from collections.abc import Callable

import _cli
from absl import flags

from cnn_jax.config import ConfigError
from cnn_jax.experiments import checks

__all__ = ["define", "main", "parse"]


def _define(fv: flags.FlagValues, field: dataclasses.Field, kind, module_name) -> None:
    default, doc = field.default, field.metadata.get("help", field.name)
    common = {"flag_values": fv, "module_name": module_name}
    if typing.get_origin(kind) is tuple:  # comma-separated; items converted in settings()
        flags.DEFINE_list(field.name, [str(v) for v in default], doc, **common)
    elif kind is bool:
        flags.DEFINE_boolean(field.name, default, doc, **common)
    elif kind is int:
        flags.DEFINE_integer(field.name, default, doc, **common)
    elif kind is float:
        flags.DEFINE_float(field.name, default, doc, **common)
    else:
        flags.DEFINE_string(field.name, default, doc, **common)


def _define_all(module, fv: flags.FlagValues, module_name: str | None = None) -> None:
    flags.DEFINE_string("workdir", None, "Output folder (experiment.json, CSV, figures).",
                        flag_values=fv, module_name=module_name)
    hints = typing.get_type_hints(module.Settings)
    for field in dataclasses.fields(module.Settings):
        _define(fv, field, hints[field.name], module_name)


_ITEM = {int: checks.as_int, float: checks.as_float, str: str}


def settings(module, fv: flags.FlagValues):
    """``module.Settings`` from parsed flags: list items converted, then every field checked.

    Raises:
      ConfigError: naming the first bad flag (``field``), its value and the problem.
    """
    hints = typing.get_type_hints(module.Settings)
    values = {}
    for field in dataclasses.fields(module.Settings):
        value = fv[field.name].value
        if typing.get_origin(hints[field.name]) is tuple:
            item = _ITEM[typing.get_args(hints[field.name])[0]]
            value = checks.items(field.name, value, item, allow_empty=True, unique=False)
        values[field.name] = value
    return module.Settings(**values)


def parse(module, argv: list[str]):
    """``(workdir, settings)`` from ``argv`` (``argv[0]`` is the program name), on flags of
    their own (so that a test can parse several experiments in one process).

    Raises:
      ValueError: ``--FLAG=VALUE: problem`` for anything that does not parse or that
        ``Settings`` refuses, or when ``--workdir`` is missing.
    """
    fv = flags.FlagValues()
    _define_all(module, fv)
    try:
        rest = fv(argv)
    except flags.Error as e:
        raise ValueError(_cli._absl_error_line(e, argv[1:])) from None
    if len(rest) > 1:
        raise ValueError(f"unexpected arguments {rest[1:]}")
    if not fv.workdir:
        raise ValueError("--workdir=: missing; this flag is required (on the command line or "
                         "in the flagfile)")
    try:
        return fv.workdir, settings(module, fv)
    except ConfigError as e:
        raise ValueError(f"--{e.field}={checks.show(e.value)}: {e.problem}") from None


def define(module) -> Callable[[], tuple]:
    """Defines the script's flags (``--workdir`` and one per ``Settings`` field) on absl's
    global flags; returns the whole-configuration check, ``() -> (workdir, settings)``, which
    prints the one line and exits 2 on a bad value."""
    _define_all(module, flags.FLAGS, module_name=sys.argv[0])

    def check():
        _cli.check_output("workdir", flags.FLAGS.workdir, folder=True)
        return flags.FLAGS.workdir, _cli.config_check(lambda: settings(module, flags.FLAGS))

    return check


def main(module, check: Callable[[], tuple]) -> None:
    """Runs experiment ``module`` from the command line; prints where the results went."""

    def run(argv):
        if len(argv) > 1:
            _cli.usage_error(f"unexpected arguments {argv[1:]}")
        workdir, s = check()
        command = shlex.join(["python", os.path.relpath(sys.argv[0]), *sys.argv[1:]])
        with _cli.errors_after_load(workdir):
            record = module.run(workdir, s, command_line=command)
        print(f"{workdir}: {record['finding']}")

    _cli.run(run)
