"""What the experiment scripts share: flags made from an experiment's ``Settings`` dataclass.

An experiment module in ``cnn_jax.experiments`` defines ``NAME``, a frozen ``Settings``
dataclass (ints, floats, bools, strings and tuples of ints/floats/strings) and
``run(workdir, settings, *, command_line)``. ``main(module)`` defines ``--workdir`` plus one
flag per field on a fresh ``FlagValues``, parses the command line (flagfiles included) and
calls ``run``. Bad values are one-line usage errors (exit 2) before any work starts.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import sys
import typing

from absl import flags

__all__ = ["main", "parse"]


def _define(fv: flags.FlagValues, field: dataclasses.Field, kind) -> None:
    default, doc = field.default, field.metadata.get("help", field.name)
    if typing.get_origin(kind) is tuple:  # comma-separated; items converted in parse()
        flags.DEFINE_list(field.name, [str(v) for v in default], doc, flag_values=fv)
    elif kind is bool:
        flags.DEFINE_boolean(field.name, default, doc, flag_values=fv)
    elif kind is int:
        flags.DEFINE_integer(field.name, default, doc, flag_values=fv)
    elif kind is float:
        flags.DEFINE_float(field.name, default, doc, flag_values=fv)
    else:
        flags.DEFINE_string(field.name, default, doc, flag_values=fv)


def parse(module, argv: list[str]):
    """``(workdir, settings)`` from ``argv`` (``argv[0]`` is the program name).

    Raises:
      ValueError: naming the flag and value, for anything that does not parse or that
        ``Settings`` refuses; or when ``--workdir`` is missing.
    """
    fv = flags.FlagValues()
    flags.DEFINE_string("workdir", None, "Output folder (experiment.json, CSV, figures).",
                        flag_values=fv)
    hints = typing.get_type_hints(module.Settings)
    fields = dataclasses.fields(module.Settings)
    for field in fields:
        _define(fv, field, hints[field.name])
    try:
        rest = fv(argv)
    except flags.Error as e:
        raise ValueError(str(e)) from None
    if len(rest) > 1:
        raise ValueError(f"unexpected arguments {rest[1:]}")
    if not fv.workdir:
        raise ValueError("--workdir is required (set it in the flagfile)")
    values = {}
    for field in fields:
        value = fv[field.name].value
        if typing.get_origin(hints[field.name]) is tuple:
            item = typing.get_args(hints[field.name])[0]
            try:
                value = tuple(item(v) for v in value)
            except ValueError:
                raise ValueError(f"--{field.name}={','.join(value)}: every item must be of type "
                                 f"{item.__name__}") from None
        values[field.name] = value
    return fv.workdir, module.Settings(**values)


def main(module) -> None:
    """Runs experiment ``module`` from ``sys.argv``; prints where the results went."""
    from _cli import usage_error

    try:
        workdir, settings = parse(module, sys.argv)
    except ValueError as e:
        usage_error(str(e))
    command = shlex.join(["python", os.path.relpath(sys.argv[0]), *sys.argv[1:]])
    record = module.run(workdir, settings, command_line=command)
    print(f"{workdir}: {record['finding']}")
