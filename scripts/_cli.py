"""What the absl entry points in scripts/ share: bad input is one line on stderr, exit 2.

Every script checks its whole configuration before it loads data, compiles or writes, and
answers a bad value with one line ``SCRIPT: error: --FLAG=VALUE: what is wrong and what is
allowed`` (:func:`bad_flag`). Values that absl itself cannot parse (``--epochs=x``, an
unknown flag) get the same form through :func:`run`. The ``check_*`` helpers cover the
common cases; a check that is library logic (a model name, a dataset name) lives in the
library, and the script turns its ``ValueError`` into a :func:`bad_flag` line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NoReturn

from absl import app, flags
from absl import logging as absl_logging

from cnn_jax.config import ConfigError
from cnn_jax.experiments import checks
from cnn_jax.experiments.checks import as_float, as_int, show  # noqa: F401  (the scripts')

FLAGS = flags.FLAGS


def usage_error(message: str) -> NoReturn:
    """Prints ``PROG: error: MESSAGE`` on stderr and exits with code 2 (no traceback)."""
    print(f"{os.path.basename(sys.argv[0])}: error: {message}", file=sys.stderr)
    sys.exit(2)


def bad_flag(name: str, value: Any, problem: str) -> NoReturn:
    """``usage_error("--NAME=VALUE: PROBLEM")``: the one line for a bad flag value."""
    usage_error(f"--{name}={show(value)}: {problem}")


def fail(message: str, code: int = 1) -> NoReturn:
    """A failure that is not a usage error (missing or corrupt data): the message, no traceback.

    The first line is ``PROG: error: ...``; a multi-line message (data not found, with its
    ways to fix it) keeps its further lines.
    """
    print(f"{os.path.basename(sys.argv[0])}: error: {message}", file=sys.stderr)
    sys.exit(code)


# ----------------------------------------------------------------------------- checks


def check_int(name: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    """:func:`as_int`, with a :func:`bad_flag` line for a bad value."""
    return config_check(lambda: checks.integer(name, value, low, high))


def check_float(name: str, value: Any, low: float | None = None, high: float | None = None,
                *, low_open: bool = False) -> float:
    """:func:`as_float`, with a :func:`bad_flag` line for a bad value."""
    return config_check(lambda: checks.number(name, value, low, high, low_open=low_open))


def check_choice(name: str, value: Any, allowed: Sequence[str]) -> str:
    """``value`` if it is one of ``allowed``, else :func:`bad_flag` listing them."""
    return config_check(lambda: checks.choice(name, value, allowed))


def check_list(name: str, values: Sequence[str] | None, item: Callable[[str], Any], *,
               allow_empty: bool = False, unique: bool = False) -> list:
    """Each item of a comma-separated list flag through ``item``.

    ``item`` converts one string or raises ``ValueError`` saying what is wrong (e.g.
    ``lambda v: as_int(v, 0)``); the :func:`bad_flag` line shows the whole list as typed
    and names the bad item. An empty list (``--NAME=``) or item (``a,,b``) is an error
    unless ``allow_empty``; a repeated item is one with ``unique``
    (:func:`cnn_jax.experiments.checks.items`).
    """
    return list(config_check(lambda: checks.items(name, values, item, allow_empty=allow_empty,
                                                   unique=unique)))


def check_output(name: str, path: str | None, *, folder: bool) -> str:
    """An output path that can be written: non-empty, and no file or folder in the way.

    Nothing is created: the check walks up to the nearest existing ancestor and asks whether
    it is a writable folder.

    Args:
      name: the flag.
      path: its value.
      folder: ``True`` for an output folder (may exist, as a folder), ``False`` for a file
        path (may exist, as a file).
    """
    if path is None:
        bad_flag(name, path, "missing; this flag is required (on the command line or in the "
                             "flagfile)")
    if not str(path).strip():
        bad_flag(name, path, "empty; expected a path to write to")
    full = os.path.abspath(os.path.expanduser(path))
    if os.path.exists(full):
        if folder and not os.path.isdir(full):
            bad_flag(name, path, "is a file; expected a folder (new or existing)")
        if not folder and os.path.isdir(full):
            bad_flag(name, path, "is a folder; expected a file path")
        if not os.access(full if folder else os.path.dirname(full), os.W_OK):
            bad_flag(name, path, "is not writable")
        return path
    parent = os.path.dirname(full)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        bad_flag(name, path, f"cannot be created: {parent} is a file")
    if not os.access(parent, os.W_OK):
        bad_flag(name, path, f"cannot be created: {parent} is not writable")
    return path


def check_folder(name: str, path: str | None) -> str:
    """An existing folder to read from, else :func:`bad_flag`."""
    return config_check(lambda: checks.folder(name, path))


def config_check(check: Callable[[], Any]) -> Any:
    """Runs a check that raises :class:`cnn_jax.config.ConfigError` naming its flag (the
    :mod:`cnn_jax.experiments.checks` ones); the error becomes a :func:`bad_flag` line."""
    try:
        return check()
    except ConfigError as e:
        bad_flag(e.field, e.value, e.problem)


@contextlib.contextmanager
def errors_after_load(workdir: str):
    """A :class:`cnn_jax.experiments.checks.FlagError` raised inside (a limit that only the
    loaded data can contradict, such as more examples than a split holds) becomes a
    :func:`bad_flag` line; a ``workdir`` that did not exist before is removed again."""
    new = not os.path.exists(workdir)
    try:
        yield
    except checks.FlagError as e:
        if new:
            shutil.rmtree(workdir, ignore_errors=True)
        bad_flag(e.field, e.value, e.problem)


def library_check(name: str, value: Any, check: Callable[[], Any]) -> Any:
    """Runs a library check; its ``ValueError`` or ``OSError`` becomes a :func:`bad_flag` line."""
    try:
        return check()
    except (ValueError, OSError) as e:
        bad_flag(name, value, _one_line(str(e)))


def _one_line(text: str) -> str:
    return " ".join(text.split())


# ----------------------------------------------------------------------------- absl glue


def _script_flags() -> dict[str, flags.Flag]:
    main = sys.argv[0]
    return {f.name: f for f in FLAGS.get_key_flags_for_module(main)}


def _absl_error_line(error: flags.Error, argv: Iterable[str]) -> str:
    """absl's parse error in the ``--FLAG=VALUE: problem`` form."""
    text = str(error)
    m = re.match(r"flag --(\w+)=(.*?): (.*)$", text, re.S)
    if m:
        name, value = m.group(1), m.group(2)
        parser = type(FLAGS[name].parser).__name__ if name in FLAGS else ""
        problem = {
            "IntegerParser": "not an integer; expected an integer",
            "FloatParser": "not a number; expected a number",
            "BooleanParser": f"not a boolean; use --{name}, --no{name} or "
                             f"--{name}=true/false",
        }.get(parser, _one_line(m.group(3)))
        return f"--{name}={value}: {problem}"
    m = re.match(r"Unknown command line flag '(\w+)'", text)
    if m:
        name = m.group(1)
        typed = next((a for a in argv if re.match(rf"--(no)?{name}(=|$)", a)), f"--{name}")
        known = ", ".join(sorted(_script_flags())) or "see --help"
        return f"{typed if '=' in typed else typed + '='}: unknown flag; known flags: {known}"
    m = re.match(r"Missing value for flag --(\w+)", text)
    if m:
        return f"--{m.group(1)}=: missing value; write --{m.group(1)}=VALUE"
    m = re.search(r"Unable to open flagfile: (.*)", text)
    if m:
        typed = next((a for a in argv if a.startswith("--flagfile")), "--flagfile")
        return f"{typed}: cannot open the flagfile ({_one_line(m.group(1))})"
    return _one_line(text)


def quiet_libraries() -> None:
    """Library INFO chatter (JAX's "Unable to initialize backend 'tpu'", orbax) off stderr."""
    absl_logging.set_verbosity(absl_logging.WARNING)
    for name in ("jax", "jax._src.xla_bridge", "orbax", "absl"):
        logging.getLogger(name).setLevel(logging.WARNING)


def parse_flags(argv: list[str]) -> list[str]:
    """``FLAGS(argv)``, where a value that absl cannot parse is a :func:`usage_error` line."""
    try:
        return FLAGS(argv)
    except flags.Error as e:
        usage_error(_absl_error_line(e, argv[1:]))


def run(main) -> None:
    """``absl.app.run(main)``, where a flag value that does not parse is a usage error.

    Library INFO messages are silenced (:func:`quiet_libraries`) before ``main`` runs.
    """

    def quiet_main(argv):
        quiet_libraries()
        return main(argv)

    app.run(quiet_main, flags_parser=parse_flags)


def show_progress() -> None:
    """Our progress lines (fit's epochs) on stderr; libraries only from warnings up."""
    absl_logging.set_verbosity(absl_logging.WARNING)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    root = logging.getLogger("cnn_jax")
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    root.propagate = False
