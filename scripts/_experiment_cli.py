"""What the experiment scripts share: progress logging and list flags parsed as numbers."""

from __future__ import annotations

from _cli import show_progress, usage_error  # noqa: F401  (re-exported to the scripts)
from absl import flags

FLAGS = flags.FLAGS


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
