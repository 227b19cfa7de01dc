"""What the absl entry points in scripts/ share: bad input is one line on stderr, exit 2.

Every script checks its whole configuration before it loads data, compiles or writes, and
answers a bad value with one line ``SCRIPT: error: --FLAG=VALUE: what is wrong and what is
allowed`` (:func:`bad_flag`). Values that absl itself cannot parse (``--epochs=x``, an
unknown flag) get the same form through :func:`run`. The ``check_*`` helpers cover the
common cases; a check that is library logic (a model name, a dataset name) lives in the
library, and the script turns its ``ValueError`` into a :func:`bad_flag` line.
"""

from __future__ import annotations

import logging
import math
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NoReturn

from absl import app, flags
from absl import logging as absl_logging

FLAGS = flags.FLAGS


def usage_error(message: str) -> NoReturn:
    """Prints ``PROG: error: MESSAGE`` on stderr and exits with code 2 (no traceback)."""
    print(f"{os.path.basename(sys.argv[0])}: error: {message}", file=sys.stderr)
    sys.exit(2)


def show(value: Any) -> str:
    """A flag value as the user typed it: lists comma-joined, None as empty."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


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


def as_int(value: Any, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an int in ``[low, high]`` (None: open), else ``ValueError`` saying why."""
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            value = int(str(value).strip())
        except ValueError:
            raise ValueError(f"not an integer; expected {_range_text(low, high, 'an integer')}"
                             ) from None
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"out of range; expected {_range_text(low, high, 'an integer')}")
    return value


def as_float(value: Any, low: float | None = None, high: float | None = None, *,
             low_open: bool = False) -> float:
    """``value`` as a finite float in range (``low_open``: ``> low``), else ``ValueError``."""
    allowed = _range_text(low, high, "a finite number", low_open)
    try:
        number = float(str(value).strip())
    except ValueError:
        raise ValueError(f"not a number; expected {allowed}") from None
    if not math.isfinite(number):
        raise ValueError(f"not finite; expected {allowed}")
    if ((low is not None and (number <= low if low_open else number < low))
            or (high is not None and number > high)):
        raise ValueError(f"out of range; expected {allowed}")
    return number


def _range_text(low, high, what: str, low_open: bool = False) -> str:
    if low is not None and high is not None:
        return f"{what} in {'(' if low_open else '['}{low}, {high}]"
    if low is not None:
        return f"{what} {'>' if low_open else '>='} {low}"
    if high is not None:
        return f"{what} <= {high}"
    return what


def check_int(name: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    """:func:`as_int`, with a :func:`bad_flag` line for a bad value."""
    return library_check(name, value, lambda: as_int(value, low, high))


def check_float(name: str, value: Any, low: float | None = None, high: float | None = None,
                *, low_open: bool = False) -> float:
    """:func:`as_float`, with a :func:`bad_flag` line for a bad value."""
    return library_check(name, value, lambda: as_float(value, low, high, low_open=low_open))


def check_choice(name: str, value: Any, allowed: Sequence[str]) -> str:
    """``value`` if it is one of ``allowed``, else :func:`bad_flag` listing them."""
    if value not in allowed:
        what = "empty" if value in ("", None) else "unknown"
        bad_flag(name, value, f"{what}; expected one of {', '.join(map(str, allowed))}")
    return value


def check_list(name: str, values: Sequence[str] | None, item: Callable[[str], Any], *,
               allow_empty: bool = False) -> list:
    """Each item of a comma-separated list flag through ``item``.

    ``item`` converts one string or raises ``ValueError`` saying what is wrong (e.g.
    ``lambda v: as_int(v, 0)``); the :func:`bad_flag` line shows the whole list as typed
    and names the bad item. An empty list (``--NAME=``) or item (``a,,b``) is an error
    unless ``allow_empty``.
    """
    values = list(values or [])
    if not values and not allow_empty:
        bad_flag(name, values, "empty; expected a comma-separated list")
    if any(not v.strip() for v in values):
        bad_flag(name, values, "has an empty item; expected a comma-separated list")
    out = []
    for v in values:
        try:
            out.append(item(v))
        except ValueError as e:
            bad_flag(name, values, f"item {v!r} is {_one_line(str(e))}")
    return out


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
    if path is None or not str(path).strip():
        bad_flag(name, path, "empty; expected an existing folder")
    if not os.path.isdir(os.path.expanduser(path)):
        what = "is a file" if os.path.exists(os.path.expanduser(path)) else "does not exist"
        bad_flag(name, path, f"{what}; expected an existing folder")
    return path


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
