"""What the experiment scripts share: progress logging and list flags parsed as numbers."""

from __future__ import annotations

import logging

from _cli import usage_error
from absl import flags
from absl import logging as absl_logging

FLAGS = flags.FLAGS


def show_progress() -> None:
    """Our progress lines (fit's epochs) on stderr; libraries only from warnings up."""
    absl_logging.set_verbosity(absl_logging.WARNING)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    root = logging.getLogger("cnn_jax")
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    root.propagate = False


def number_list(name: str, kind=int) -> tuple:
    """The list flag ``--name`` as a non-empty tuple of ``kind``; a usage error otherwise."""
    try:
        values = tuple(kind(v) for v in FLAGS[name].value)
    except ValueError:
        usage_error(f"--{name}={','.join(FLAGS[name].value)}: must be comma-separated "
                    f"{'integers' if kind is int else 'numbers'}")
    if not values:
        usage_error(f"--{name}=: must name at least one value")
    return values
