"""Typed checks of a configuration value, before anything is loaded, compiled or written.

Each ``FLAG``-level check returns the value converted (an ``int``, a tuple, ...) or raises
:class:`FlagError` (a :class:`cnn_jax.config.ConfigError`) with ``field`` the flag's name,
the value as given and the problem (what is wrong and what is allowed); a script prints it
as the one line
``SCRIPT: error: --FLAG=VALUE: PROBLEM`` (``scripts/_cli.py``). The experiments' settings
classes call these in ``__post_init__``; :func:`as_int`, :func:`as_float` and
:func:`folder_problem` are the value-level checks that ``scripts/_cli.py`` uses too.

>>> integer("epochs", "3", 1)
3
>>> items("seeds", ["0", "0"], lambda v: as_int(v, 0))
Traceback (most recent call last):
...
cnn_jax.experiments.checks.FlagError: --seeds=0,0: item '0' is repeated; give each value once
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import Any

from cnn_jax.config import ConfigError

__all__ = [
    "MAX_SEED",
    "FlagError",
    "as_float",
    "as_int",
    "at_most",
    "choice",
    "dataset",
    "examples",
    "folder",
    "folder_problem",
    "integer",
    "items",
    "new_or_folder",
    "number",
    "positive",
    "seed",
    "show",
    "sizes",
    "split_size",
    "subsets",
    "wrap",
]

MAX_SEED = 2**32 - 1  # NumPy's and JAX's seeds are uint32
# Examples per split of the IDX sets (every copy: TFDS-prepared, IDX, Debian's package).
_IDX_SPLIT_SIZES = {"train": 60_000, "test": 10_000}


class FlagError(ConfigError):
    """A bad value of flag ``field``: ``"--FIELD=VALUE: PROBLEM"``, the value as typed."""

    def __init__(self, field: str, value: Any, problem: str):
        ValueError.__init__(self, f"--{field}={show(value)}: {problem}")
        self.field, self.value, self.problem = field, value, problem


def show(value: Any) -> str:
    """A value as the user typed it: lists comma-joined, None as empty.

    >>> show((1, 2)), show(None), show(0.5)
    ('1,2', '', '0.5')
    """
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


# ----------------------------------------------------------------------------- values


def range_text(low, high, what: str, low_open: bool = False) -> str:
    """``what`` with its bounds in words: ``"an integer >= 0"``, ``"a finite number in (0, 1]"``."""
    if low is not None and high is not None:
        return f"{what} in {'(' if low_open else '['}{low}, {high}]"
    if low is not None:
        return f"{what} {'>' if low_open else '>='} {low}"
    if high is not None:
        return f"{what} <= {high}"
    return what


def as_int(value: Any, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an int in ``[low, high]`` (None: open), else ``ValueError`` saying why."""
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            value = int(str(value).strip())
        except ValueError:
            raise ValueError(f"not an integer; expected {range_text(low, high, 'an integer')}"
                             ) from None
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"out of range; expected {range_text(low, high, 'an integer')}")
    return value


def as_float(value: Any, low: float | None = None, high: float | None = None, *,
             low_open: bool = False) -> float:
    """``value`` as a finite float in range (``low_open``: ``> low``), else ``ValueError``."""
    allowed = range_text(low, high, "a finite number", low_open)
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


def folder_problem(path: str | None) -> str | None:
    """Why ``path`` is not an existing folder to read from, or None when it is."""
    if path is None or not str(path).strip():
        return "empty; expected an existing folder"
    if not os.path.isdir(os.path.expanduser(path)):
        what = "is a file" if os.path.exists(os.path.expanduser(path)) else "does not exist"
        return f"{what}; expected an existing folder"
    return None


# ----------------------------------------------------------------------------- flags


def wrap(flag: str, value: Any, check: Callable[[], Any]) -> Any:
    try:
        return check()
    except ConfigError:
        raise
    except ValueError as e:
        raise FlagError(flag, value, " ".join(str(e).split())) from None


def integer(flag: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    """:func:`as_int` of flag ``flag``."""
    return wrap(flag, value, lambda: as_int(value, low, high))


def number(flag: str, value: Any, low: float | None = None, high: float | None = None, *,
           low_open: bool = False) -> float:
    """:func:`as_float` of flag ``flag``."""
    return wrap(flag, value, lambda: as_float(value, low, high, low_open=low_open))


def seed(flag: str, value: Any) -> int:
    """A seed: an integer in ``[0, 2**32 - 1]``."""
    return integer(flag, value, 0, MAX_SEED)


def choice(flag: str, value: Any, allowed: Sequence[str]) -> str:
    """``value`` if it is one of ``allowed``."""
    if value not in allowed:
        what = "empty" if value in ("", None) else "unknown"
        raise FlagError(flag, value, f"{what}; expected one of {', '.join(map(str, allowed))}")
    return value


def items(flag: str, values: Sequence[Any] | None, item: Callable[[Any], Any] = str, *,
          allow_empty: bool = False, unique: bool = True, increasing: bool = False) -> tuple:
    """Each item of a list flag through ``item``.

    Args:
      flag: the flag's name.
      values: its items (strings as typed, or already converted).
      item: converts one item or raises ``ValueError`` saying what is wrong (e.g.
        ``lambda v: as_int(v, 0)``).
      allow_empty: whether no items at all is allowed (an empty item, ``a,,b``, never is).
      unique: refuse a repeated item.
      increasing: refuse items out of increasing order.

    Returns:
      The converted items, as a tuple.
    """
    values = list(values or [])
    if not values and not allow_empty:
        raise FlagError(flag, values, "empty; expected a comma-separated list")
    if any(not str(v).strip() for v in values):
        raise FlagError(flag, values, "has an empty item; expected a comma-separated list")
    out = []
    for v in values:
        try:
            converted = item(v)
        except ValueError as e:
            problem = e.problem if isinstance(e, ConfigError) else " ".join(str(e).split())
            raise FlagError(flag, values, f"item {v!r} is {problem}") from None
        if unique and converted in out:
            raise FlagError(flag, values, f"item {v!r} is repeated; give each value once")
        if increasing and out and converted < out[-1]:
            raise FlagError(flag, values, f"item {v!r} is out of order; expected increasing "
                                            "values")
        out.append(converted)
    return tuple(out)


def folder(flag: str, path: str | None) -> str:
    """An existing folder to read from."""
    problem = folder_problem(path)
    if problem:
        raise FlagError(flag, path, problem)
    return path


def new_or_folder(flag: str, path: str | None) -> str:
    """A folder that may not exist yet (read when it does): non-empty, and not a file."""
    if path is None or not str(path).strip():
        raise FlagError(flag, path, "empty; expected a folder (new or existing)")
    if os.path.exists(os.path.expanduser(path)) and not os.path.isdir(os.path.expanduser(path)):
        raise FlagError(flag, path, "is a file; expected a folder (new or existing)")
    return path


def dataset(flag: str, name: Any) -> str:
    """A dataset name ``cnn_jax.data.load`` knows (no data is read)."""
    from cnn_jax import data  # pulls in TFDS for names it does not know itself

    if not isinstance(name, str) or not name.strip():
        raise FlagError(flag, name, "empty; expected a dataset name such as fashion_mnist")
    return wrap(flag, name, lambda: data.check_name(name) or name)


def split_size(name: str, split: str, data_dir: str | None = None) -> int | None:
    """Examples in split ``split`` of dataset ``name`` when known without reading it, else None
    (another TFDS set, or an IDX set read from a folder the user names).

    >>> split_size("fashion_mnist", "train"), split_size("cifar10", "train")
    (60000, None)
    """
    from cnn_jax.data import SYNTHETIC
    from cnn_jax.data.sources import IDX_DATASETS

    if name in SYNTHETIC:
        return SYNTHETIC[name][1][split]
    if name in IDX_DATASETS and data_dir is None:
        return _IDX_SPLIT_SIZES[split]
    return None


def examples(flag: str, n: Any, available: int | None, *, low: int = 0,
             what: str = "examples") -> int:
    """A count of examples in ``[low, available]`` (``available`` None: no upper bound).

    Called before loading with :func:`split_size`, and after loading with the split's
    length when its size was not known before.
    """
    n = integer(flag, n, low)
    if available is not None and n > available:
        raise FlagError(flag, n, f"asks for more {what} than the {available} there are; "
                                   f"expected an integer in [{low}, {available}]")
    return n


def subsets(name: Any, train_examples: Any, test_examples: Any) -> None:
    """``--dataset`` and its example counts ``--train_examples`` / ``--test_examples`` (0: the
    whole split), each at most the split's size when that is known before loading."""
    dataset("dataset", name)
    for flag, split, n in (("train_examples", "train", train_examples),
                           ("test_examples", "test", test_examples)):
        examples(flag, n, split_size(name, split), what=f"{split} examples")


def positive(settings: Any, *names: str) -> None:
    """Each named field of ``settings`` (and flag of the same name) is an integer >= 1."""
    for name in names:
        integer(name, getattr(settings, name), 1)


def sizes(flag: str, values: Sequence[Any], *, allow_empty: bool = False) -> tuple[int, ...]:
    """Layer widths: integers >= 1 (repeats allowed: ``8,8`` is two layers of 8)."""
    return items(flag, values, lambda v: as_int(v, 1), allow_empty=allow_empty, unique=False)


def at_most(flag: str, value: int, limit: int, limit_text: str) -> None:
    """``value`` must not exceed ``limit`` (another flag's value, named in ``limit_text``)."""
    if value > limit:
        raise FlagError(flag, value, f"exceeds {limit_text}; expected at most {limit}")
